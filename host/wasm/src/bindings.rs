//! Host bindings generated from `wit/`, one module per world. Interfaces shared between worlds
//! are generated once, in the validator module, and reused by the others through `with`.

pub(crate) mod validator {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "validator",
        imports: { default: async },
        exports: { default: async },
    });
}

pub(crate) mod endpoint {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "endpoint",
        imports: { default: async },
        exports: { default: async },
        with: {
            "sigil:plugin/types": super::validator::sigil::plugin::types,
            "sigil:plugin/log": super::validator::sigil::plugin::log,
            "sigil:plugin/config": super::validator::sigil::plugin::config,
            "sigil:plugin/clock": super::validator::sigil::plugin::clock,
        },
    });
}

pub(crate) mod workflow {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "workflow",
        imports: { default: async },
        exports: { default: async },
        with: {
            "sigil:plugin/types": super::validator::sigil::plugin::types,
            "sigil:plugin/log": super::validator::sigil::plugin::log,
            "sigil:plugin/config": super::validator::sigil::plugin::config,
            "sigil:plugin/clock": super::validator::sigil::plugin::clock,
        },
    });
}

pub(crate) mod connector {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ca-connector",
        imports: { default: async },
        exports: { default: async },
        with: {
            "sigil:plugin/types": super::validator::sigil::plugin::types,
            "sigil:plugin/log": super::validator::sigil::plugin::log,
            "sigil:plugin/config": super::validator::sigil::plugin::config,
            "sigil:plugin/clock": super::validator::sigil::plugin::clock,
            "sigil:plugin/outbound-http": super::workflow::sigil::plugin::outbound_http,
        },
    });
}

pub(crate) mod identity {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "identity-source",
        imports: { default: async },
        exports: { default: async },
        with: {
            "sigil:plugin/types": super::validator::sigil::plugin::types,
            "sigil:plugin/log": super::validator::sigil::plugin::log,
            "sigil:plugin/config": super::validator::sigil::plugin::config,
            "sigil:plugin/clock": super::validator::sigil::plugin::clock,
            "sigil:plugin/outbound-http": super::workflow::sigil::plugin::outbound_http,
        },
    });
}
