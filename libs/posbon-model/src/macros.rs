//! Internal macros.

/// Declares a closed, snake_case string enum with `ALL`, `as_str`, `Display`
/// and `FromStr`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize, ::schemars::JsonSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Wire name of the value (snake_case).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }

            /// Parses a wire name; `None` when it is not one of [`Self::ALL`].
            pub fn from_wire(s: &str) -> Option<Self> {
                match s {
                    $( $wire => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// Human-readable list of the wire names, e.g. `a, b, c`.
            pub fn expected() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                names.join(", ")
            }
        }

        impl $crate::macros::WireEnum for $name {
            const WHAT: &'static str = $what;

            fn from_wire(s: &str) -> Option<Self> {
                $name::from_wire(s)
            }

            fn expected() -> String {
                $name::expected()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_wire(s).ok_or_else(|| $crate::UnknownVariant {
                    what: $what,
                    value: s.to_owned(),
                    expected: Self::expected(),
                })
            }
        }
    };
}

/// Implemented by the closed string enums declared with `string_enum!`.
pub(crate) trait WireEnum: Sized {
    /// What the value is, e.g. `category`.
    const WHAT: &'static str;
    /// Parses a wire name.
    fn from_wire(s: &str) -> Option<Self>;
    /// Comma-separated list of the wire names.
    fn expected() -> String;
}
