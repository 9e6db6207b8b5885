//! NodeRestriction (not implemented yet: admits everything).

use super::Plugin;

pub struct NodeRestriction;

impl Plugin for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }
}
