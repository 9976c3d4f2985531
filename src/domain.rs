//! Vocabulary shared by every resource: roles and locales, with their machine codes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Declares a string enum stored as its snake_case code in the database.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// Parses a stored code; the database's CHECK constraints keep it valid.
            pub fn from_code(code: &str) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code_enum! {
    /// Who a user is on the marketplace; decides what they see and do.
    Role {
        /// The marketplace operator's staff.
        Platform = "platform",
        /// An agency's staff (operators; `admin` = agency manager).
        Agency = "agency",
        /// An agency's field investigator.
        Agent = "agent",
        /// A buyer of services.
        Client = "client",
    }
}

impl Role {
    /// Agency and agent users belong to an agency; platform staff and clients never do.
    pub fn belongs_to_agency(self) -> bool {
        matches!(self, Role::Agency | Role::Agent)
    }
}

code_enum! {
    /// Language of a user's labels, notifications and e-mails.
    Locale {
        En = "en",
        It = "it",
        Es = "es",
        Pl = "pl",
    }
}
