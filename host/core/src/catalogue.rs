//! One macro for Sigil's catalogues of wire names (error codes, audit actions, lifecycle
//! events): a table of variants, each with its doc line (its meaning) and its wire name, becomes
//! an enum with `ALL`, `as_str`, `meaning`, `parse`, `Display`, `Serialize` and comparison with a
//! wire name.

/// Declares a catalogue enum from a table of `/// meaning` + `Variant = "wire",` entries.
macro_rules! catalogue {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[doc = $doc:literal])* $variant:ident = $wire:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[doc = $doc])* $variant,)*
        }

        impl $name {
            /// Every entry, in table order.
            pub const ALL: &'static [$name] = &[$(Self::$variant,)*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }

            /// What it means (its doc line).
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!($($doc),*).trim_ascii(),)*
                }
            }

            /// The entry whose wire name is `s`, if there is one.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|e| e.as_str() == s)
            }
        }

        /// On the wire (and in audit details) an entry is its name.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        /// Compares with a wire name (what clients, the trail and tests see).
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use catalogue;
