//! Pages rendered by a real browser: headless Chromium (Debian's `chromium` package) loads a
//! file, runs its scripts, and gives back the DOM they left and the console's messages.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The browser's window: the "first screen" a page's checks speak of.
pub const WINDOW: (u32, u32) = (1400, 900);
/// Longest a page may take, scripts included.
const DEADLINE: Duration = Duration::from_secs(60);

/// What headless Chromium left of a page.
pub struct Rendered {
    /// The DOM after the page's scripts ran (`--dump-dom`).
    pub dom: String,
    /// The console's messages (`Uncaught TypeError: ...`, `console.log` output).
    pub console: Vec<String>,
}

impl Rendered {
    /// The value of attribute `name` of the page's `<body>`.
    pub fn body_attr(&self, name: &str) -> Option<String> {
        let start = self.dom.find("<body")?;
        let tag = &self.dom[start..start + self.dom[start..].find('>')?];
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &tag[at..];
        Some(
            value[..value.find('"')?]
                .replace("&quot;", "\"")
                .replace("&amp;", "&"),
        )
    }

    /// The console messages that are script errors.
    pub fn errors(&self) -> Vec<&str> {
        self.console
            .iter()
            .map(String::as_str)
            .filter(|m| m.contains("Uncaught") || m.contains("Error"))
            .collect()
    }
}

/// Loads `page` (its address followed by `fragment`, e.g. `#zoom=8`, or "") in headless
/// Chromium with a [`WINDOW`]-sized window. `None` when chromium is not installed (see
/// [`installed`](crate::installed): under `CI=true` that fails the test instead). Panics when
/// the browser fails or takes longer than a minute.
pub fn headless(page: &Path, fragment: &str) -> Option<Rendered> {
    if !crate::installed(&["chromium"], "chromium") {
        return None;
    }
    static N: AtomicUsize = AtomicUsize::new(0);
    // A profile of its own: browsers running at once must not share one.
    let dir = std::env::temp_dir().join(format!(
        "ordeal-chromium-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let page = std::fs::canonicalize(page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let out = std::fs::File::create(dir.join("dom")).expect("a file for the DOM");
    let err = std::fs::File::create(dir.join("log")).expect("a file for the log");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            // Containers often have a small /dev/shm.
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}{fragment}", page.display()))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish {} in {DEADLINE:?}", page.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let dom = std::fs::read_to_string(dir.join("dom")).unwrap_or_default();
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.success() && dom.contains("<body"),
        "chromium failed on {} ({status}):\n{log}",
        page.display()
    );
    // `[pid:tid:time:INFO:CONSOLE:12] "message", source: file:///... (12)`
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(|l| l.split_once("] ").map_or(l, |(_, m)| m).to_string())
        .collect();
    Some(Rendered { dom, console })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_attributes_and_errors_are_read_from_the_dump() {
        let r = Rendered {
            dom: "<html><head></head><body data-js=\"ok\" data-n=\"&quot;3&quot;\"><p>x</p>".into(),
            console: vec![
                "\"hello\", source: file:///p.html (3)".into(),
                "\"Uncaught TypeError: x is null\", source: file:///p.html (9)".into(),
            ],
        };
        assert_eq!(r.body_attr("data-js").as_deref(), Some("ok"));
        assert_eq!(r.body_attr("data-n").as_deref(), Some("\"3\""));
        assert_eq!(r.body_attr("js"), None);
        assert_eq!(
            r.errors(),
            ["\"Uncaught TypeError: x is null\", source: file:///p.html (9)"]
        );
    }
}
