//! The result of running a plugin: a closed set of codes and the reasons behind them.

/// What a plugin decided (upstream's `framework.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The plugin ran and is satisfied.
    Success,
    /// An internal error: the pod is retried after backoff.
    Error,
    /// The pod does not fit now, but preemption or a cluster change may help.
    Unschedulable,
    /// The pod does not fit and preemption cannot help.
    UnschedulableAndUnresolvable,
    /// A Permit plugin holds the pod.
    Wait,
    /// The plugin has nothing to do for this pod (PreFilter/PreScore): its later
    /// extension points are skipped for this cycle.
    Skip,
    /// PreEnqueue: the pod waits outside the active queue (scheduling gates).
    Pending,
}

/// A plugin's verdict: a code, the reasons users see, and the plugin that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    code: Code,
    reasons: Vec<String>,
    plugin: &'static str,
}

impl Default for Status {
    fn default() -> Self {
        Status::success()
    }
}

impl Status {
    /// A status with `code` and `reasons`.
    pub fn new(code: Code, reasons: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Status {
            code,
            reasons: reasons.into_iter().map(Into::into).collect(),
            plugin: "",
        }
    }

    /// Success, no reasons.
    pub fn success() -> Self {
        Status::new(Code::Success, Vec::<String>::new())
    }

    /// Skip, no reasons.
    pub fn skip() -> Self {
        Status::new(Code::Skip, Vec::<String>::new())
    }

    /// An internal error.
    pub fn error(message: impl Into<String>) -> Self {
        Status::new(Code::Error, [message.into()])
    }

    /// Unschedulable for one reason.
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Status::new(Code::Unschedulable, [reason.into()])
    }

    /// UnschedulableAndUnresolvable for one reason.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Status::new(Code::UnschedulableAndUnresolvable, [reason.into()])
    }

    /// The same status, recorded as decided by `plugin`.
    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        self.plugin = plugin;
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    /// The plugin that returned this status ("" when not recorded).
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// Unschedulable or UnschedulableAndUnresolvable.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The reasons joined as upstream's `Status.Message()` does.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}
