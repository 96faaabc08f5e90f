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
