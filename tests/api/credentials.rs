//! Credential modes (caller token, static token, token file, AK/SK, IAM password) and
//! access control, each over real HTTP against the simulator's gateway and IAM.

use std::{path::PathBuf, process::Command, time::Duration};

use chrono::Utc;
use dli_graphql::{
    app::App,
    config::Config,
    project_id::ProjectId,
    sim::{Fault, SimAccessKey, SimAuth, SimIamUser, SimOptions, Simulator},
    upstream::auth::signer::{AkSk, parse_authorization},
};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_at, spawn_with_config, trace_logs};

const AK: &str = "AKSIMQTWAOYTTINDUT2Q";
const SK: &str = "sk-MFyfvK41ba2giqM7Uio6PznpdUKG-secret";
const SECURITY_TOKEN: &str = "st-gQpjbi1ub3J0aC00-session";
const API_KEY: &str = "key-7c1d0e5a-callers";
const IAM_DOMAIN: &str = "acme";
const IAM_USER: &str = "dli-reader";
const IAM_PASSWORD: &str = "pw-Kx9!q2-iam";
const LIST: &str = "{ connections(projectId: \"p1\") { name } }";

fn access_key(security_token: Option<&str>) -> SimAccessKey {
    SimAccessKey {
        access_key: AK.into(),
        secret_key: SK.into(),
        security_token: security_token.map(Into::into),
    }
}

fn iam_user() -> SimIamUser {
    SimIamUser { domain: IAM_DOMAIN.into(), name: IAM_USER.into(), password: IAM_PASSWORD.into() }
}

fn iam_args(sim_url: &str, password: &str) -> Vec<String> {
    [
        "--iam-endpoint",
        sim_url,
        "--iam-domain",
        IAM_DOMAIN,
        "--iam-user",
        IAM_USER,
        "--iam-password",
        password,
        "--api-keys",
        API_KEY,
    ]
    .map(String::from)
    .to_vec()
}

/// A simulator with `auth`, and the server pointed at it with the arguments `args` builds
/// from the simulator's URL.
async fn spawn(auth: SimAuth, args: impl FnOnce(&str) -> Vec<String>) -> TestApp {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions { auth, ..SimOptions::default() })
        .await
        .expect("simulator starts");
    let url = sim.url();
    let mut all: Vec<String> =
        ["--listen", "127.0.0.1:0", "--endpoint", &url].into_iter().map(String::from).collect();
    all.extend(args(&url));
    spawn_with_config(Config::from_args(all).expect("config parses"), sim).await
}

/// POSTs `query` with `headers`; returns status, response headers and body.
async fn call(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
    let mut req = app.http.post(app.graphql_url()).json(&json!({ "query": query }));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("server answers");
    let (status, resp_headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, resp_headers, resp.json().await.expect("JSON body"))
}

fn with_key() -> [(&'static str, &'static str); 1] {
    [("Authorization", "Bearer key-7c1d0e5a-callers")]
}

fn list_requests(sim: &Simulator) -> Vec<dli_graphql::sim::LoggedRequest> {
    sim.requests().into_iter().filter(|r| r.path.starts_with("/v2.0/")).collect()
}

fn iam_requests(sim: &Simulator) -> usize {
    sim.requests().iter().filter(|r| r.path == "/v3/auth/tokens").count()
}

fn assert_data(resp: &Value) {
    assert!(resp["data"]["connections"].as_array().is_some_and(|a| !a.is_empty()), "{resp:#}");
}

#[tokio::test]
async fn a_static_service_token_is_sent_for_callers_with_an_api_key() {
    let token = "svc-static-token-0a1b";
    let auth = SimAuth { strict_tokens: true, tokens: vec![token.into()], ..SimAuth::default() };
    let app =
        spawn(auth, |_| vec!["--auth-token".into(), token.into(), "--api-keys".into(), API_KEY.into()]).await;
    let (status, _, resp) = call(&app, LIST, &with_key()).await;
    assert_eq!(status, 200);
    assert_data(&resp);
    let reqs = list_requests(&app.sim);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("x-auth-token"), Some(token));
    assert_eq!(reqs[0].header("authorization"), None, "the caller's API key must not travel upstream");
    assert_eq!(reqs[0].header("x-sdk-date"), None);
}

#[tokio::test]
async fn a_token_file_is_reread_when_it_changes() {
    let dir = std::env::temp_dir().join(format!("dli-graphql-token-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("token");
    std::fs::write(&path, "file-token-one\n").expect("write");
    let auth = SimAuth {
        strict_tokens: true,
        tokens: vec!["file-token-one".into(), "file-token-two-rotated".into()],
        ..SimAuth::default()
    };
    let file = path.to_string_lossy().into_owned();
    let app =
        spawn(auth, |_| vec!["--auth-token-file".into(), file, "--api-keys".into(), API_KEY.into()]).await;
    assert_data(&call(&app, LIST, &with_key()).await.2);
    std::fs::write(&path, "file-token-two-rotated\n").expect("rotate");
    assert_data(&call(&app, LIST, &with_key()).await.2);
    // A rotation to a token DLI does not know shows as DLI's refusal, not a stale token.
    std::fs::write(&path, "file-token-three-unknown\n").expect("rotate");
    let resp = call(&app, LIST, &with_key()).await.2;
    assert_eq!(error_at(&resp, "connections")["extensions"]["code"], "UNAUTHENTICATED");
    let sent: Vec<_> =
        list_requests(&app.sim).iter().map(|r| r.header("x-auth-token").unwrap_or("").to_owned()).collect();
    assert_eq!(sent, ["file-token-one", "file-token-two-rotated", "file-token-three-unknown"]);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn ak_sk_requests_are_signed_and_the_simulator_verifies_them() {
    let auth = SimAuth { access_keys: vec![access_key(None)], strict_tokens: true, ..SimAuth::default() };
    let app = spawn(auth, |_| {
        ["--access-key", AK, "--secret-key", SK, "--api-keys", API_KEY].map(String::from).to_vec()
    })
    .await;
    let (status, _, resp) = call(
        &app,
        "{ a: connections(projectId: \"p1\") { name } b: connections(projectId: \"p2\") { name } }",
        &with_key(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(resp.get("errors").is_none(), "{resp:#}");
    assert!(resp["data"]["a"].is_array() && resp["data"]["b"].is_array(), "{resp:#}");
    let reqs = list_requests(&app.sim);
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        let project = r.path.split('/').nth(2).expect("project segment");
        assert_eq!(r.header("x-project-id"), Some(project));
        assert_eq!(r.header("host"), Some(app.sim.addr().to_string().as_str()));
        assert_eq!(r.header("x-auth-token"), None);
        let date = r.header("x-sdk-date").expect("x-sdk-date");
        assert!(chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ").is_ok(), "{date}");
        let parsed =
            parse_authorization(r.header("authorization").expect("signed")).expect("SDK-HMAC-SHA256");
        assert_eq!(parsed.access_key, AK);
        assert_eq!(parsed.signed_headers, "host;x-project-id;x-sdk-date");
        assert_eq!(parsed.signature.len(), 64);
    }
}

#[tokio::test]
async fn temporary_ak_sk_credentials_send_and_sign_the_security_token() {
    let auth = SimAuth { access_keys: vec![access_key(Some(SECURITY_TOKEN))], ..SimAuth::default() };
    let args =
        ["--access-key", AK, "--secret-key", SK, "--security-token", SECURITY_TOKEN, "--api-keys", API_KEY];
    let app = spawn(auth.clone(), |_| args.map(String::from).to_vec()).await;
    assert_data(&call(&app, LIST, &with_key()).await.2);
    let r = &list_requests(&app.sim)[0];
    assert_eq!(r.header("x-security-token"), Some(SECURITY_TOKEN));
    let parsed = parse_authorization(r.header("authorization").expect("signed")).expect("parses");
    assert_eq!(parsed.signed_headers, "host;x-project-id;x-sdk-date;x-security-token");
    // The same keys without their session token are refused by the gateway.
    let bare = spawn(auth, |_| args[..4].iter().chain(&args[6..]).map(|s| s.to_string()).collect()).await;
    let resp = call(&bare, LIST, &with_key()).await.2;
    assert_eq!(error_at(&resp, "connections")["extensions"]["upstreamCode"], "APIG.0301");
}

#[tokio::test]
async fn a_wrong_secret_key_or_an_unknown_access_key_is_unauthenticated() {
    for (ak, sk) in [(AK, "sk-wrong-secret"), ("AKUNKNOWN000000000", SK)] {
        let auth = SimAuth { access_keys: vec![access_key(None)], ..SimAuth::default() };
        let app = spawn(auth, |_| {
            ["--access-key", ak, "--secret-key", sk, "--api-keys", API_KEY].map(String::from).to_vec()
        })
        .await;
        let resp = call(&app, LIST, &with_key()).await.2;
        let e = error_at(&resp, "connections");
        assert_eq!(e["extensions"]["code"], "UNAUTHENTICATED", "{e:#}");
        assert_eq!(e["extensions"]["upstreamCode"], "APIG.0301");
        assert!(!resp.to_string().contains(sk));
    }
}

/// Signs a GET of `project`'s list as if the clock read `now`, and sends it to the simulator.
async fn signed_get(sim: &Simulator, sign_for: &str, send_to: &str, now: chrono::DateTime<Utc>) -> u16 {
    let keys = AkSk::new(AK, SK.into(), None).expect("keys");
    let url =
        |p: &str| reqwest::Url::parse(&format!("{}/v2.0/{p}/datasource-connection", sim.url())).expect("url");
    let mut signed = reqwest::Request::new(reqwest::Method::GET, url(sign_for));
    keys.sign(&mut signed, &ProjectId::parse(sign_for).expect("valid"), now);
    let mut sent = reqwest::Request::new(reqwest::Method::GET, url(send_to));
    *sent.headers_mut() = signed.headers().clone();
    reqwest::Client::new().execute(sent).await.expect("answer").status().as_u16()
}

#[tokio::test]
async fn the_simulator_checks_the_signature_and_a_fifteen_minute_clock_window() {
    let auth = SimAuth { access_keys: vec![access_key(None)], ..SimAuth::default() };
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions { auth, ..SimOptions::default() })
        .await
        .expect("sim");
    let now = Utc::now();
    let minutes = |m: i64| chrono::Duration::minutes(m);
    assert_eq!(signed_get(&sim, "p1", "p1", now).await, 200);
    assert_eq!(signed_get(&sim, "p1", "p1", now - minutes(14)).await, 200);
    assert_eq!(signed_get(&sim, "p1", "p1", now + minutes(14)).await, 200);
    assert_eq!(signed_get(&sim, "p1", "p1", now - minutes(16)).await, 401, "stale date accepted");
    assert_eq!(signed_get(&sim, "p1", "p1", now + minutes(16)).await, 401, "future date accepted");
    assert_eq!(signed_get(&sim, "p1", "p2", now).await, 401, "a signature for p1 opened p2");
}

#[tokio::test]
async fn every_upstream_call_is_signed_afresh() {
    let auth = SimAuth { access_keys: vec![access_key(None)], ..SimAuth::default() };
    let app = spawn(auth, |_| {
        ["--access-key", AK, "--secret-key", SK, "--allow-anonymous"].map(String::from).to_vec()
    })
    .await;
    assert_data(&call(&app, LIST, &[]).await.2);
    // X-Sdk-Date has one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_data(&call(&app, LIST, &[]).await.2);
    let reqs = list_requests(&app.sim);
    assert_eq!(reqs.len(), 2);
    assert_ne!(reqs[0].header("x-sdk-date"), reqs[1].header("x-sdk-date"));
    assert_ne!(reqs[0].header("authorization"), reqs[1].header("authorization"));
}

#[tokio::test]
async fn iam_password_credentials_get_one_token_per_project_and_reuse_it() {
    let auth = SimAuth { iam_users: vec![iam_user()], strict_tokens: true, ..SimAuth::default() };
    let app = spawn(auth, |url| iam_args(url, IAM_PASSWORD)).await;
    for project in ["p1", "p1", "p2", "p1"] {
        let (_, _, resp) =
            call(&app, &format!("{{ connections(projectId: \"{project}\") {{ name }} }}"), &with_key()).await;
        assert_data(&resp);
    }
    assert_eq!(iam_requests(&app.sim), 2, "one token per project");
    let tokens: Vec<(String, String)> = list_requests(&app.sim)
        .iter()
        .map(|r| (r.path.clone(), r.header("x-auth-token").expect("token").to_owned()))
        .collect();
    assert_eq!(tokens[0].1, tokens[1].1);
    assert_eq!(tokens[0].1, tokens[3].1);
    assert_ne!(tokens[0].1, tokens[2].1, "a p1 token was used for p2");
    assert!(tokens.iter().all(|(_, t)| t.starts_with("MIIsim")), "not IAM-issued: {tokens:?}");
}

#[tokio::test]
async fn concurrent_requests_share_one_iam_token_fetch() {
    let auth = SimAuth {
        iam_users: vec![iam_user()],
        strict_tokens: true,
        iam_delay: Duration::from_millis(300),
        ..SimAuth::default()
    };
    let app = spawn(auth, |url| iam_args(url, IAM_PASSWORD)).await;
    let key = with_key();
    let calls = (0..16).map(|_| call(&app, LIST, &key));
    for (status, _, resp) in futures::future::join_all(calls).await {
        assert_eq!(status, 200);
        assert_data(&resp);
    }
    assert_eq!(iam_requests(&app.sim), 1);
    // Concurrent identical fetches may also share DLI calls (coalescing): at most one each.
    assert!((1..=16).contains(&app.sim.calls_for("p1")), "{}", app.sim.calls_for("p1"));
}

#[tokio::test]
async fn iam_tokens_close_to_expiry_are_renewed_before_use() {
    // One minute left is inside the renewal margin (five minutes before `expires_at`).
    let auth = SimAuth {
        iam_users: vec![iam_user()],
        strict_tokens: true,
        token_ttl: Duration::from_secs(60),
        ..SimAuth::default()
    };
    let app = spawn(auth, |url| iam_args(url, IAM_PASSWORD)).await;
    for _ in 0..3 {
        assert_data(&call(&app, LIST, &with_key()).await.2);
    }
    assert_eq!(iam_requests(&app.sim), 3, "each use should renew a token this close to expiry");
    let tokens: std::collections::HashSet<String> =
        list_requests(&app.sim).iter().filter_map(|r| r.header("x-auth-token").map(str::to_owned)).collect();
    assert_eq!(tokens.len(), 3);
}

#[tokio::test]
async fn a_token_dli_refuses_is_replaced_on_the_next_request() {
    let auth = SimAuth { iam_users: vec![iam_user()], strict_tokens: true, ..SimAuth::default() };
    let app = spawn(auth, |url| iam_args(url, IAM_PASSWORD)).await;
    assert_data(&call(&app, LIST, &with_key()).await.2);
    app.sim.revoke_issued_tokens();
    let resp = call(&app, LIST, &with_key()).await.2;
    assert_eq!(error_at(&resp, "connections")["extensions"]["code"], "UNAUTHENTICATED");
    assert_data(&call(&app, LIST, &with_key()).await.2);
    assert_eq!(iam_requests(&app.sim), 2);
}

#[tokio::test]
async fn a_wrong_iam_password_is_unauthenticated_with_iams_message() {
    let auth = SimAuth { iam_users: vec![iam_user()], ..SimAuth::default() };
    let app = spawn(auth, |url| iam_args(url, "pw-wrong-guess")).await;
    let resp = call(&app, LIST, &with_key()).await.2;
    let e = error_at(&resp, "connections");
    assert_eq!(e["extensions"]["code"], "UNAUTHENTICATED", "{e:#}");
    assert_eq!(e["extensions"]["iamStatus"], 401);
    assert_eq!(e["message"], "IAM refused the service's credentials: The username or password is wrong.");
    assert!(!resp.to_string().contains("pw-wrong-guess"));
    assert_eq!(app.sim.stats().calls, 0, "DLI was called without a token");
}

#[tokio::test]
async fn concurrent_requests_share_one_failed_iam_fetch_but_later_ones_try_again() {
    let auth =
        SimAuth { iam_users: vec![iam_user()], iam_delay: Duration::from_millis(300), ..SimAuth::default() };
    let app = spawn(auth, |url| iam_args(url, "pw-wrong-guess")).await;
    let key = with_key();
    let calls = (0..8).map(|_| call(&app, LIST, &key));
    for (_, _, resp) in futures::future::join_all(calls).await {
        assert_eq!(error_at(&resp, "connections")["extensions"]["code"], "UNAUTHENTICATED");
    }
    assert_eq!(iam_requests(&app.sim), 1, "waiters should share the failed fetch");
    // A failure is not cached for requests that come after it.
    call(&app, LIST, &key).await;
    assert_eq!(iam_requests(&app.sim), 2);
}

#[tokio::test]
async fn an_unreachable_iam_is_upstream_unavailable() {
    let app = spawn(SimAuth::default(), |_| iam_args("http://127.0.0.1:1", IAM_PASSWORD)).await;
    let resp = call(&app, LIST, &with_key()).await.2;
    let e = error_at(&resp, "connections");
    assert_eq!(e["extensions"]["code"], "UPSTREAM_UNAVAILABLE", "{e:#}");
    assert_eq!(e["message"], "IAM is unreachable");
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn without_a_valid_api_key_the_service_answers_401_and_calls_nothing_upstream() {
    let auth = SimAuth { access_keys: vec![access_key(None)], ..SimAuth::default() };
    let app = spawn(auth, |_| {
        ["--access-key", AK, "--secret-key", SK, "--api-keys", API_KEY].map(String::from).to_vec()
    })
    .await;
    let wrong = format!("Bearer {API_KEY}x");
    let basic = format!("Basic {API_KEY}");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Authorization", &wrong)],
        vec![("Authorization", &basic)],
        vec![("Authorization", "Bearer ")],
        vec![("Authorization", API_KEY)],
        vec![("Accept", "application/graphql-response+json")],
    ];
    for headers in cases {
        let (status, resp_headers, body) = call(&app, LIST, &headers).await;
        assert_eq!(status, 401, "{headers:?}: {body:#}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body:#}");
        assert!(body.get("data").is_none());
        assert!(
            resp_headers
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer")),
            "{resp_headers:?}"
        );
        assert!(!body.to_string().contains(API_KEY));
    }
    let get = app.http.get(app.graphql_url()).query(&[("query", LIST)]).send().await.expect("answer");
    assert_eq!(get.status(), 401);
    assert!(app.sim.requests().is_empty(), "a refused request reached DLI: {:?}", app.sim.requests());
}

#[tokio::test]
async fn api_keys_come_from_the_list_or_a_file_that_is_reread() {
    let dir = std::env::temp_dir().join(format!("dli-graphql-api-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path: PathBuf = dir.join("keys");
    std::fs::write(&path, "# callers\nfile-key-one\n").expect("write");
    let file = path.to_string_lossy().into_owned();
    let app = spawn(SimAuth::default(), |_| {
        ["--auth-token", "svc-token", "--api-keys", "list-key-a,list-key-b", "--api-keys-file", &file]
            .map(String::from)
            .to_vec()
    })
    .await;
    let status = |key: &'static str| {
        let app = &app;
        async move { call(app, LIST, &[("Authorization", &format!("Bearer {key}"))]).await.0 }
    };
    assert_eq!(status("list-key-a").await, 200);
    assert_eq!(status("list-key-b").await, 200);
    assert_eq!(status("file-key-one").await, 200);
    assert_eq!(status("file-key-two").await, 401);
    std::fs::write(&path, "file-key-two-rotated\n").expect("rotate");
    assert_eq!(status("file-key-two-rotated").await, 200);
    assert_eq!(status("file-key-one").await, 401, "a key removed from the file still works");
    assert_eq!(status("list-key-a").await, 200);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn allow_anonymous_lets_callers_without_a_key_use_the_service_credential() {
    let app = spawn(SimAuth::default(), |_| {
        ["--auth-token", "svc-token-anon", "--allow-anonymous"].map(String::from).to_vec()
    })
    .await;
    let (status, _, resp) = call(&app, LIST, &[]).await;
    assert_eq!(status, 200);
    assert_data(&resp);
    assert_eq!(list_requests(&app.sim)[0].header("x-auth-token"), Some("svc-token-anon"));
}

#[tokio::test]
async fn callers_with_their_own_token_need_no_api_key_and_are_not_signed() {
    let auth = SimAuth { access_keys: vec![access_key(None)], ..SimAuth::default() };
    let app = spawn(auth, |_| {
        ["--access-key", AK, "--secret-key", SK, "--api-keys", API_KEY].map(String::from).to_vec()
    })
    .await;
    let (status, _, resp) = call(&app, LIST, &[("X-Auth-Token", "caller-own-token-9")]).await;
    assert_eq!(status, 200);
    assert_data(&resp);
    let r = &list_requests(&app.sim)[0];
    assert_eq!(r.header("x-auth-token"), Some("caller-own-token-9"));
    for signed_only in ["authorization", "x-sdk-date", "x-project-id", "x-security-token"] {
        assert_eq!(r.header(signed_only), None, "{signed_only} sent with a caller's token");
    }
}

#[tokio::test]
async fn only_allowed_projects_may_be_queried() {
    let app = spawn(SimAuth::default(), |_| vec!["--allowed-projects".into(), "p1,p3".into()]).await;
    let (status, _, resp) = call(
        &app,
        "{ a: connections(projectId: \"p1\") { name } b: connections(projectId: \"p2\") { name } }",
        &[("X-Auth-Token", "caller-token")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(resp["data"]["a"].is_array(), "{resp:#}");
    assert_eq!(resp["data"]["b"], Value::Null);
    let e = error_at(&resp, "b");
    assert_eq!(e["extensions"]["code"], "FORBIDDEN");
    assert_eq!(e["extensions"]["projectId"], "p2");
    assert_eq!(app.sim.calls_for("p2"), 0);
    assert_eq!(app.sim.calls_for("p1"), 1);
}

#[tokio::test]
async fn two_callers_with_different_tokens_each_get_their_own_answer() {
    let app = spawn(SimAuth::default(), |_| Vec::new()).await;
    let (allowed, denied) = ("caller-a-token-allowed", "caller-b-token-denied");
    app.sim.forbid(denied, "shared");
    let query = "{ connections(projectId: \"shared\") { name } }";
    let calls = (0..20).map(|i| {
        let token = if i % 2 == 0 { allowed } else { denied };
        let app = &app;
        async move { (token, call(app, query, &[("X-Auth-Token", token)]).await.2) }
    });
    for (token, resp) in futures::future::join_all(calls).await {
        if token == allowed {
            assert_data(&resp);
            assert!(resp.get("errors").is_none(), "{resp:#}");
        } else {
            assert_eq!(resp["data"]["connections"], Value::Null, "{resp:#}");
            assert_eq!(error_at(&resp, "connections")["extensions"]["code"], "FORBIDDEN");
        }
    }
    let sent: Vec<_> =
        list_requests(&app.sim).iter().map(|r| r.header("x-auth-token").map(str::to_owned)).collect();
    // Coalescing may merge concurrent calls of one caller, never of two: every call carried
    // one of the two tokens, and each token reached DLI itself.
    assert!(!sent.is_empty() && sent.len() <= 20, "{}", sent.len());
    assert!(sent.iter().all(|t| t.as_deref() == Some(allowed) || t.as_deref() == Some(denied)));
    assert!(sent.iter().any(|t| t.as_deref() == Some(allowed)));
    assert!(sent.iter().any(|t| t.as_deref() == Some(denied)));
}

#[tokio::test]
async fn service_credentials_without_api_keys_refuse_to_start() {
    let config = Config::from_args([
        "--listen",
        "127.0.0.1:0",
        "--endpoint",
        "http://127.0.0.1:9",
        "--access-key",
        AK,
        "--secret-key",
        SK,
    ])
    .expect("parses");
    let err = App::build(&config).await.err().expect("refused").to_string();
    assert!(err.contains("--allow-anonymous") && err.contains("DLI_GRAPHQL_API_KEYS"), "{err}");
    assert!(!err.contains(SK));
}

#[tokio::test]
async fn the_demo_needs_no_api_key() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
    let config = Config::from_args(["--demo", "--listen", "127.0.0.1:0"]).expect("parses");
    let app = spawn_with_config(config, sim).await;
    let (status, _, resp) = call(&app, LIST, &[]).await;
    assert_eq!(status, 200);
    assert_data(&resp);
}

#[test]
fn help_shows_the_env_names_but_never_secret_values() {
    let out = Command::new(env!("CARGO_BIN_EXE_dli-graphql"))
        .arg("--help")
        .env("DLI_AUTH_TOKEN", "help-token-value")
        .env("DLI_SECRET_KEY", "help-sk-value")
        .env("DLI_SECURITY_TOKEN", "help-st-value")
        .env("DLI_IAM_PASSWORD", "help-pw-value")
        .env("DLI_ACCESS_KEY", "help-ak-value")
        .env("DLI_GRAPHQL_API_KEYS", "help-key-value")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "DLI_AUTH_TOKEN",
        "DLI_AUTH_TOKEN_FILE",
        "DLI_ACCESS_KEY",
        "DLI_SECRET_KEY",
        "DLI_SECURITY_TOKEN",
        "DLI_IAM_USER",
        "DLI_IAM_PASSWORD",
        "DLI_IAM_DOMAIN",
        "DLI_IAM_ENDPOINT",
        "DLI_GRAPHQL_API_KEYS",
        "DLI_GRAPHQL_API_KEYS_FILE",
        "DLI_ALLOWED_PROJECTS",
    ] {
        assert!(help.contains(name), "--help does not name {name}");
    }
    assert!(!help.contains("-value"), "--help shows a secret:\n{help}");
}

/// Successes, an upstream refusal, a refused API key: the paths that log the most.
async fn exercise(addr: String) {
    let http = reqwest::Client::new();
    for (project, key) in [("p1", API_KEY), ("p2", API_KEY), ("denied", API_KEY), ("p1", "key-wrong-guess")] {
        let resp = http
            .post(format!("http://{addr}/graphql"))
            .header("Authorization", format!("Bearer {key}"))
            .json(&json!({ "query": format!("{{ connections(projectId: \"{project}\") {{ name }} }}") }))
            .send()
            .await
            .expect("answer");
        assert!(resp.status().is_success() || resp.status() == 401);
    }
}

#[tokio::test]
async fn no_secret_token_or_signature_appears_in_trace_logs_in_any_mode() {
    let static_token = "svc-static-token-LOGCHECK";
    let file_token = "svc-file-token-LOGCHECK";
    let auth = SimAuth {
        access_keys: vec![access_key(Some(SECURITY_TOKEN))],
        iam_users: vec![iam_user()],
        strict_tokens: true,
        tokens: vec![static_token.into(), file_token.into()],
        ..SimAuth::default()
    };
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions { auth, ..SimOptions::default() })
        .await
        .expect("sim");
    sim.set_fault("denied", Fault::gateway(401, "APIG.0301", "Incorrect IAM authentication information"));
    let url = sim.url();
    let dir = std::env::temp_dir().join(format!("dli-graphql-log-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token_file = dir.join("token");
    std::fs::write(&token_file, file_token).expect("write");
    let token_file = token_file.to_string_lossy().into_owned();
    let common = [("DLI_ENDPOINT", url.as_str()), ("DLI_GRAPHQL_API_KEYS", API_KEY)];
    let modes: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("static token", vec![("DLI_AUTH_TOKEN", static_token)]),
        ("token file", vec![("DLI_AUTH_TOKEN_FILE", token_file.as_str())]),
        (
            "AK/SK",
            vec![("DLI_ACCESS_KEY", AK), ("DLI_SECRET_KEY", SK), ("DLI_SECURITY_TOKEN", SECURITY_TOKEN)],
        ),
        (
            "IAM",
            vec![
                ("DLI_IAM_ENDPOINT", url.as_str()),
                ("DLI_IAM_DOMAIN", IAM_DOMAIN),
                ("DLI_IAM_USER", IAM_USER),
                ("DLI_IAM_PASSWORD", IAM_PASSWORD),
            ],
        ),
        (
            "IAM, wrong password",
            vec![
                ("DLI_IAM_ENDPOINT", url.as_str()),
                ("DLI_IAM_DOMAIN", IAM_DOMAIN),
                ("DLI_IAM_USER", IAM_USER),
                ("DLI_IAM_PASSWORD", "pw-wrong-LOGCHECK"),
            ],
        ),
    ];
    for (mode, env) in modes {
        let before = sim.requests().len();
        let env: Vec<(&str, &str)> = common.iter().copied().chain(env).collect();
        let logs = trace_logs(&["--upstream-timeout", "2s"], &env, exercise).await;
        assert!(logs.contains("upstream.list_connections"), "{mode}: no upstream spans logged:\n{logs}");
        assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "{mode}: trace level not active");
        // Everything secret: what was configured, and what actually went upstream.
        let not_secret =
            ["DLI_ENDPOINT", "DLI_IAM_ENDPOINT", "DLI_AUTH_TOKEN_FILE", "DLI_IAM_DOMAIN", "DLI_IAM_USER"];
        let mut secrets: Vec<String> =
            env.iter().filter(|(k, _)| !not_secret.contains(k)).map(|(_, v)| v.to_string()).collect();
        secrets.extend(["LOGCHECK".into(), "key-wrong-guess".into(), file_token.into()]);
        for r in &sim.requests()[before..] {
            secrets.extend(r.header("x-auth-token").map(str::to_owned));
            secrets.extend(r.header("x-security-token").map(str::to_owned));
            if let Some(sig) = r.header("authorization").and_then(parse_authorization) {
                secrets.push(sig.signature);
            }
        }
        if mode == "IAM" {
            assert!(
                sim.issued_token_count() > 0 && logs.contains("iam.token"),
                "{mode}: no IAM token fetched"
            );
        }
        if mode == "AK/SK" {
            assert!(secrets.iter().any(|s| s.len() == 64), "{mode}: nothing was signed");
        }
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(!logs.contains(secret.as_str()), "{mode}: a secret leaked into the logs: {secret}");
        }
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
