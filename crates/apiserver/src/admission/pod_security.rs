//! PodSecurity (not implemented yet: admits everything).

use super::Plugin;

pub struct PodSecurity;

impl Plugin for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }
}
