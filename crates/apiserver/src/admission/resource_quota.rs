//! ResourceQuota (not implemented yet: admits everything).

use super::Plugin;

pub struct ResourceQuota;

impl Plugin for ResourceQuota {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }
}
