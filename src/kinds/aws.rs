//! Each kind's AWS adapter, from the one list of kinds.

use super::adapter::KindAdapter;
use super::{for_each_kind, Kind};

/// `adapter()` from the list.
macro_rules! define_adapters {
    ($($(#[$doc:meta])* $variant:ident: $folder:ident::$item:ident;)*) => {
        /// The AWS adapter of `kind`.
        pub fn adapter(kind: Kind) -> &'static dyn KindAdapter {
            match kind {
                $(Kind::$variant => &super::$folder::aws::$item,)*
            }
        }
    };
}
for_each_kind!(define_adapters);
