//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook.

use super::Plugin;

#[derive(Default)]
pub struct MutatingWebhook;

impl Plugin for MutatingWebhook {
    fn name(&self) -> &'static str {
        "MutatingAdmissionWebhook"
    }
}

#[derive(Default)]
pub struct ValidatingWebhook;

impl Plugin for ValidatingWebhook {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionWebhook"
    }
}
