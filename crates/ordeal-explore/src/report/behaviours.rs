//! What distinguishes the behaviours of a campaign: each one's abstraction against the most
//! common one's, from the `fingerprint.txt` of their first runs.

use std::fmt::Write as _;
use std::path::Path;

use super::esc;
use crate::fingerprint::diff;
use crate::model::Behaviour;

/// Behaviours shown with their differences; the rest are only counted.
const SHOWN: usize = 20;

/// An HTML list: per behaviour after the most common, the lines of its abstraction that the
/// most common lacks (`+`) and the other way (`-`). Empty when the texts are not kept.
pub(crate) fn differences(out: &Path, behaviours: &[Behaviour]) -> String {
    let text = |b: &Behaviour| {
        std::fs::read_to_string(out.join(format!("runs/{:06}/fingerprint.txt", b.first_run))).ok()
    };
    let Some((first, rest)) = behaviours.split_first() else {
        return String::new();
    };
    let Some(common) = text(first) else {
        return String::new();
    };
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<details><summary>What distinguishes each behaviour from the most common one \
         (<code>{}</code>, {} runs)</summary>",
        esc(&first.fingerprint),
        first.runs
    );
    let _ = writeln!(h, "<pre>{}</pre>", esc(&common));
    for b in rest.iter().take(SHOWN) {
        let Some(t) = text(b) else { continue };
        let lines = diff(&t, &common);
        let _ = writeln!(
            h,
            "<p><code>{}</code> ({} run{}, first run {}):</p><pre>{}</pre>",
            esc(&b.fingerprint),
            b.runs,
            if b.runs == 1 { "" } else { "s" },
            b.first_run,
            esc(&lines.join("\n"))
        );
    }
    if rest.len() > SHOWN {
        let _ = writeln!(
            h,
            "<p>{} more behaviours not shown.</p>",
            rest.len() - SHOWN
        );
    }
    h.push_str("</details>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behaviour(fingerprint: &str, runs: u64, first_run: u64) -> Behaviour {
        Behaviour {
            fingerprint: fingerprint.into(),
            runs,
            first_run,
            outcome: "pass".into(),
        }
    }

    #[test]
    fn each_behaviour_is_shown_against_the_most_common() {
        let dir = tempfile::tempdir().unwrap();
        for (run, text) in [
            (0, "workload c\n  → n#1 demo-kv: SET → OK\noutcome pass\n"),
            (
                7,
                "workload c\n  → n#1 demo-kv: SET → NOTPRIMARY\noutcome pass\n",
            ),
        ] {
            let d = dir.path().join(format!("runs/{run:06}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("fingerprint.txt"), text).unwrap();
        }
        let h = differences(
            dir.path(),
            &[behaviour("aaaa", 5, 0), behaviour("bbbb", 1, 7)],
        );
        assert!(h.contains("<code>bbbb</code> (1 run, first run 7):</p><pre>+ workload c: → n#1 demo-kv: SET → NOTPRIMARY\n- workload c: → n#1 demo-kv: SET → OK</pre>"), "{h}");
        assert!(h.contains("most common one (<code>aaaa</code>, 5 runs)"));
        assert_eq!(differences(dir.path(), &[behaviour("cccc", 1, 3)]), "");
    }
}
