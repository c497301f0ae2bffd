//! TOML source positions and diagnostics, shared by ordeal's file formats (the experiment file,
//! fault schedules, the applied record) so that every problem reads the same.
//!
//! - [`Source`] turns byte offsets (the spans the `toml` parser gives) into [`Location`]s,
//!   printed `file:line:column`. Line starts are indexed once, so a file with many values on
//!   one line costs no more than a file with many lines.
//! - [`Diagnostic`] is one problem at a location. Formats collect every problem of a file and
//!   report them at once, sorted with [`sort_diagnostics`] and shown one per line with
//!   [`display_diagnostics`].
//! - [`suggest`] picks a "did you mean" among known names, and [`truncated`] keeps a huge
//!   value from being repeated in full in a message; both cost at most a bounded amount per
//!   candidate, whatever the value's length.
//! - [`parse_duration`] reads durations written as text (`"500ms"`, `"1m30s"`).
//!
//! ```
//! use ordeal_toml::{suggest, Source};
//!
//! let text = "name = \"x\"\nkind = \"crsh\"\n";
//! let src = Source::new("f.toml", text);
//! let at = text.find("\"crsh\"").unwrap();
//! let hint = suggest("crsh", ["crash", "pause"], 2);
//! let d = src.diag(Some(at..at + 6), format!("unknown kind (did you mean `{}`?)", hint.unwrap()));
//! assert_eq!(d.to_string(), "f.toml:2:8: unknown kind (did you mean `crash`?)");
//! ```

#![forbid(unsafe_code)]

mod diagnostic;
mod duration;
mod size;
mod source;
mod suggest;

pub use diagnostic::{display_diagnostics, sort_diagnostics, Diagnostic, Location};
pub use duration::{duration_hint, parse_duration, DurationError};
pub use size::{parse_size, SizeError};
pub use source::Source;
pub use suggest::{suggest, truncated, MAX_SHOWN_CHARS};
