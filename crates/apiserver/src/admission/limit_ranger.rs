//! LimitRanger (not implemented yet: admits everything).

use super::Plugin;

pub struct LimitRanger;

impl Plugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }
}
