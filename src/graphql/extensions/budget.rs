//! The per-operation budget of per-connection upstream calls (`--max-detail-calls`).
//!
//! A list field costs one upstream call per project, but `queueStatuses`, `connection`,
//! `enhancedConnection` and `privileges` cost one call per connection: a page of 500
//! connections asking for `queueStatuses` would be 500 calls. Each operation gets a fresh
//! [`CallBudget`] (installed by [`CallBudgets`] before execution); a call joins it once per
//! distinct target, so fields that share a DataLoader call share its cost too, and a field
//! past the budget fails on its own with `LIMIT_EXCEEDED`.

use std::{collections::HashSet, sync::Arc};

use async_graphql::{
    Request, ServerResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest},
};
use parking_lot::Mutex;

use crate::{
    error,
    project_id::{ConnectionId, ProjectId},
};

/// The flag that sets the budget, named in its errors.
pub const FLAG: &str = "max-detail-calls";

/// One per-connection upstream call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DetailCall {
    /// Classic show.
    Show(ProjectId, ConnectionId),
    /// Enhanced show.
    EnhancedShow(ProjectId, ConnectionId),
    /// Enhanced privileges.
    Privileges(ProjectId, ConnectionId),
}

/// The calls one operation has made, up to `max`.
#[derive(Debug)]
pub struct CallBudget {
    max: usize,
    admitted: Mutex<HashSet<DetailCall>>,
}

impl CallBudget {
    /// An unused budget of `max` calls.
    pub fn new(max: usize) -> Self {
        Self { max, admitted: Mutex::default() }
    }

    /// Admits `call`: free when it was admitted before, else one unit of the budget;
    /// `LIMIT_EXCEEDED` when none is left.
    pub fn admit(&self, call: DetailCall) -> async_graphql::Result<()> {
        let mut admitted = self.admitted.lock();
        if admitted.contains(&call) {
            return Ok(());
        }
        if admitted.len() >= self.max {
            return Err(error::field_limit_error(
                FLAG,
                self.max,
                "this operation has used up its per-connection upstream calls",
            ));
        }
        admitted.insert(call);
        Ok(())
    }
}

/// Installs a fresh [`CallBudget`] of `max` calls in every operation's data.
#[derive(Debug, Clone, Copy)]
pub struct CallBudgets {
    /// Calls per operation.
    pub max: usize,
}

impl ExtensionFactory for CallBudgets {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for CallBudgets {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        request.data.insert(Arc::new(CallBudget::new(self.max)));
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_call_is_free_and_the_budget_ends_at_max() {
        let p = ProjectId::parse("p").expect("valid");
        let id = |s: &str| ConnectionId::parse(s).expect("valid");
        let budget = CallBudget::new(2);
        assert!(budget.admit(DetailCall::Show(p.clone(), id("a"))).is_ok());
        assert!(budget.admit(DetailCall::Show(p.clone(), id("a"))).is_ok());
        assert!(budget.admit(DetailCall::Privileges(p.clone(), id("a"))).is_ok());
        let err = budget.admit(DetailCall::Show(p.clone(), id("b"))).expect_err("over budget");
        assert!(err.message.contains("max-detail-calls = 2"), "{}", err.message);
        assert!(budget.admit(DetailCall::Show(p, id("a"))).is_ok());
    }
}
