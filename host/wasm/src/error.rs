//! Typed plugin failures.

/// Why a plugin call or load failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The call ran past the plugin's deadline and was stopped.
    #[error("plugin `{plugin}` exceeded its {ms} ms deadline and was stopped")]
    Timeout {
        /// Plugin id.
        plugin: String,
        /// The deadline.
        ms: u64,
    },
    /// The plugin tried to grow its memory past its limit and was stopped.
    #[error("plugin `{plugin}` exceeded its {mib} MiB memory limit and was stopped")]
    MemoryLimit {
        /// Plugin id.
        plugin: String,
        /// The limit.
        mib: u64,
    },
    /// The plugin trapped.
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// Plugin id.
        plugin: String,
        /// What wasmtime reported.
        message: String,
    },
    /// The plugin returned an error of its own.
    #[error("plugin `{plugin}` rejected the call: {message}")]
    Rejected {
        /// Plugin id.
        plugin: String,
        /// Its message.
        message: String,
    },
    /// The component does not fit this host (world, version, invalid binary).
    #[error("plugin `{plugin}` is incompatible: {message}")]
    Incompatible {
        /// Plugin id.
        plugin: String,
        /// Why.
        message: String,
    },
    /// The component imports a host interface its configuration does not grant.
    #[error(
        "plugin `{plugin}` imports `{interface}`, which its configuration does not grant (add `{grant}` to its grants)"
    )]
    NotGranted {
        /// Plugin id.
        plugin: String,
        /// The imported interface.
        interface: String,
        /// The grant name to add.
        grant: String,
    },
    /// The plugin file could not be read.
    #[error("plugin `{plugin}`: {message}")]
    Io {
        /// Plugin id.
        plugin: String,
        /// What failed.
        message: String,
    },
    /// The engine could not be created.
    #[error("plugin engine: {0}")]
    Engine(String),
}

impl PluginError {
    /// Stable code for the API.
    pub fn code(&self) -> sigil_core::ErrorCode {
        use sigil_core::ErrorCode as C;
        match self {
            Self::Timeout { .. } => C::PluginTimeout,
            Self::MemoryLimit { .. } => C::PluginMemoryLimit,
            Self::Trap { .. } => C::PluginTrap,
            Self::Rejected { .. } => C::PluginRejected,
            Self::Incompatible { .. } => C::PluginIncompatible,
            Self::NotGranted { .. } => C::PluginNotGranted,
            Self::Io { .. } => C::PluginIo,
            Self::Engine(_) => C::PluginEngine,
        }
    }
}
