//! The admin pages (`/ui`, `/ui/jobs/{id}`) of the service on the local backend, with a
//! job of the fake spark-submit (tests/fixtures/fake-spark-submit) reporting its progress
//! as the real job does:
//!
//! - over HTTP: the headers every page carries, escaping, paging, the 401 that asks a
//!   browser for the token, and Basic or bearer credentials;
//! - in a real browser: headless Chromium from Debian's packages (`dev/test.sh` installs
//!   it when it can), driven over its DevTools pipe. It loads both pages with the token as
//!   Basic credentials, finds the job's row and the plot in the rendered DOM, takes a
//!   screenshot, and reports no console message, log error or exception; a page made to
//!   fail shows that the check sees them. Without Chromium the test fails under CI and is
//!   skipped with a message elsewhere.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{wait_for, TestApp, PATIENCE};

/// How long the browser has to answer a call or fire an event.
const BROWSER_WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "admin-pages-token";

/// The service on the local backend with the fake spark-submit, and what these tests ask
/// of it with the token.
struct Service {
    app: TestApp,
}

impl std::ops::Deref for Service {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Service {
    async fn start(extra: &[(&str, &str)]) -> Service {
        let app = TestApp::builder().local().vars(extra).start().await;
        Service { app }
    }

    /// Lets the job of this name go past `iteration`.
    fn go_past(&self, name: &str, iteration: u64) {
        let go = self.path("results").join(format!("{name}.go{iteration}"));
        std::fs::write(go, "").unwrap();
    }

    async fn post_job(&self, name: &str, app: &str) -> String {
        let r = self
            .http
            .post(format!("{}/job", self.base))
            .bearer_auth(TOKEN)
            .json(
                &json!({"name": name, "algorithm": 1, "entrypoint_arguments": [
                {"name": "app-name", "value": app},
                {"name": "molecules-dataset", "value": format!("{app}/molecules.csv")},
                {"name": "n-stars", "value": 15}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Reads `GET /job/{id}` until its progress is at `iteration`.
    async fn progress_at(&self, id: &str, iteration: u64) -> Value {
        let what = format!("job {id} to report iteration {iteration}");
        wait_for(&what, PATIENCE, || async {
            let (_, job) = self.get_with_token(&format!("/job/{id}"), TOKEN).await;
            if job["progress"]["iteration"] == iteration {
                Ok(job)
            } else {
                Err(job)
            }
        })
        .await
    }

    async fn get_as(&self, path: &str, auth: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(value) = auth {
            request = request.header("Authorization", value);
        }
        request.send().await.unwrap()
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A job at its second iteration of three, still running.
async fn running_job(service: &Service, name: &str, app: &str) -> String {
    service.behave(name, "progress 3");
    let id = service.post_job(name, app).await;
    for iteration in 0..2 {
        service.progress_at(&id, iteration).await;
        service.go_past(name, iteration);
    }
    service.progress_at(&id, 2).await;
    id
}

#[tokio::test]
async fn pages_need_the_token_as_basic_password_or_bearer_and_say_how_in_a_401() {
    let service = Service::start(&[("API_TOKEN", TOKEN)]).await;
    for path in ["/ui", "/ui/jobs/abc123"] {
        for auth in [
            None,
            Some(basic("admin", "wrong")),
            Some("Bearer wrong".to_owned()),
        ] {
            let r = service.get_as(path, auth.as_deref()).await;
            assert_eq!(r.status(), 401, "{path} {auth:?}");
            assert_eq!(
                r.headers()["www-authenticate"],
                "Basic realm=\"multiomix-aws-emr\", charset=\"UTF-8\""
            );
            assert!(r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"));
            let body = r.text().await.unwrap();
            assert!(!body.contains(TOKEN));
        }
    }
    for auth in [
        basic("admin", TOKEN),
        basic("", TOKEN),
        format!("Bearer {TOKEN}"),
    ] {
        let r = service.get_as("/ui", Some(&auth)).await;
        assert_eq!(r.status(), 200, "{auth}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(TOKEN), "the token never shows in a page");
    }
    // The JSON routes keep their bearer token alone.
    assert_eq!(
        service
            .get_as("/jobs", Some(&basic("admin", TOKEN)))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn the_pages_show_a_running_job_escaped_with_its_plot_and_strict_headers() {
    let service = Service::start(&[]).await;
    let id = running_job(&service, "PlotBBHA", "exp-plot").await;
    // A log line with markup in it, as a job's output may have.
    let log = service.path("logs").join(format!("{id}.log"));
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(file, "<script>alert(1)</script> & \"quoted\"").unwrap();

    let r = service.get_as("/ui", None).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let list = r.text().await.unwrap();
    assert!(list.contains("<meta name=\"viewport\""));
    assert!(
        list.contains(&format!("<a href=\"/ui/jobs/{id}\">PlotBBHA</a>")),
        "{list}"
    );
    assert!(list.contains("<progress max=\"18\" value=\"14\""), "{list}");
    assert!(list.contains(">RUNNING<"), "{list}");
    assert!(list.contains(">0.5200<"), "{list}");

    let r = service.get_as(&format!("/ui/jobs/{id}"), None).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "a running job's page reloads"
    );
    assert!(page.contains("<svg class=\"plot\""), "{page}");
    assert!(page.contains("exp-plot"));
    assert!(
        page.contains("progress: iteration 1/3"),
        "the log's tail: {page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;"),
        "{page}"
    );
    assert!(!page.contains("<script"), "nothing of the log is markup");
    assert!(page.contains(".progress/exp-plot.json"), "{page}");
    // Three reports so far: iterations 0, 1 and 2 in the plot's table.
    assert_eq!(page.matches("<tr><td data-label=\"Iteration\"").count(), 3);

    // Unknown, malformed, and out-of-range requests are HTML answers too.
    assert_eq!(service.get_as("/ui/jobs/zzz999", None).await.status(), 404);
    assert_eq!(
        service.get_as("/ui/jobs/NOT-AN-ID", None).await.status(),
        400
    );
    assert_eq!(service.get_as("/ui?page=0", None).await.status(), 400);
    assert_eq!(service.get_as("/ui?sort=name", None).await.status(), 400);
    let empty = service.get_as("/ui?page=9", None).await;
    assert_eq!(empty.status(), 200);
    assert!(empty
        .text()
        .await
        .unwrap()
        .contains("No jobs on this page."));
    service.go_past("PlotBBHA", 2);
}

// ---- Headless Chromium over its DevTools pipe ----

/// Chromium from `CHROMIUM`, else `chromium` or `chromium-browser` on the PATH. `None`,
/// and the test is skipped, when there is none; a failure under CI.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium not found: CI must run the browser test (dev/test.sh installs it with apt-get as root; or set CHROMIUM)");
        }
        eprintln!("skipping: chromium not found (apt-get install chromium, or set CHROMIUM)");
    }
    found
}

/// A headless Chromium driven over `--remote-debugging-pipe`: it reads DevTools messages
/// on fd 3 and writes them on fd 4, each ended by a NUL byte.
struct Browser {
    child: Child,
    to_browser: UnixStream,
    from_browser: mpsc::Receiver<Value>,
    next_id: u64,
    /// Events of the page's session, in order.
    events: Vec<Value>,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch(program: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (ours_in, theirs_in) = UnixStream::pair().unwrap();
        let (ours_out, theirs_out) = UnixStream::pair().unwrap();
        let (read_fd, write_fd) = {
            use std::os::fd::AsRawFd;
            (theirs_in.as_raw_fd(), theirs_out.as_raw_fd())
        };
        let mut command = Command::new(program);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                "--window-size=1000,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The sockets are close-on-exec; their copies at 3 and 4 are not.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::dup2(read_fd, 3)?;
                nix::unistd::dup2(write_fd, 4)?;
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        drop((theirs_in, theirs_out));
        let (tx, rx) = mpsc::channel();
        let reader = ours_out;
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        message.pop();
                        if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                            if tx.send(value).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to_browser: ours_in,
            from_browser: rx,
            next_id: 0,
            events: Vec::new(),
            session: None,
            _profile: profile,
        }
    }

    /// Sends a command (to the page's session once attached) and waits for its answer;
    /// the events that arrive meanwhile are kept.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = session.clone().into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
            if answer.get("method").is_some() {
                self.events.push(answer);
            }
        }
    }

    /// Waits for an event of the page's session.
    fn wait_for(&mut self, method: &str) {
        let start = self.events.len();
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            if self.events[start..].iter().any(|e| e["method"] == method) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {method}"));
            if event.get("method").is_some() {
                self.events.push(event);
            }
        }
    }

    /// Opens a page target, attaches to it, and turns on the domains that report
    /// console messages, log entries and exceptions. `headers` go with every request.
    fn open(&mut self, headers: Value) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            self.call(domain, json!({}));
        }
        self.call("Network.setExtraHTTPHeaders", json!({"headers": headers}));
    }

    /// Loads `url` and waits for its load event; the rendered DOM.
    fn load(&mut self, url: &str) -> String {
        let start = self.events.len();
        self.call("Page.navigate", json!({"url": url}));
        let deadline = Instant::now() + BROWSER_WAIT;
        while !self.events[start..]
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            assert!(Instant::now() < deadline, "{url} did not load");
            self.wait_for("Page.loadEventFired");
        }
        let dom = self.call(
            "Runtime.evaluate",
            json!({"expression": "document.documentElement.outerHTML", "returnByValue": true}),
        );
        dom["result"]["value"].as_str().unwrap().to_owned()
    }

    /// Evaluates an expression in the page; its value.
    fn eval(&mut self, expression: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }

    /// What the browser reported as going wrong since event `from`: console messages of
    /// the page's own (it has no script, so any), log entries of level error, exceptions.
    fn complaints(&self, from: usize) -> Vec<Value> {
        self.events[from..]
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") | Some("Runtime.exceptionThrown") => true,
                Some("Log.entryAdded") => {
                    matches!(
                        e["params"]["entry"]["level"].as_str(),
                        Some("error" | "warning")
                    )
                }
                _ => false,
            })
            .cloned()
            .collect()
    }

    fn screenshot(&mut self, path: &Path) -> usize {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, &png).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        png.len()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn in_headless_chromium_the_pages_render_the_job_and_its_plot_without_a_console_error() {
    let Some(program) = chromium() else { return };
    let service = Service::start(&[("API_TOKEN", TOKEN)]).await;
    let id = running_job(&service, "BrowserBBHA", "exp-browser").await;
    let base = service.base.clone();
    let shots = service.path("shots");
    std::fs::create_dir_all(&shots).unwrap();

    // The browser works in a thread of its own: its calls block.
    let outcome = tokio::task::spawn_blocking(move || {
        let mut browser = Browser::launch(&program);
        // Without credentials: the service's 401, which asks for Basic credentials.
        browser.open(json!({}));
        let start = browser.events.len();
        browser.load(&format!("{base}/ui"));
        let status = browser.events[start..]
            .iter()
            .find(|e| {
                e["method"] == "Network.responseReceived"
                    && e["params"]["response"]["url"] == format!("{base}/ui")
            })
            .map(|e| e["params"]["response"]["status"].clone());
        assert_eq!(status, Some(json!(401)));

        // The check sees what goes wrong: a page whose script logs an error and throws.
        let start = browser.events.len();
        browser.load("data:text/html,<p>x</p><script>console.error('seen');throw new Error('thrown')</script>");
        let seen = browser.complaints(start);
        assert!(
            seen.iter().any(|e| e["method"] == "Runtime.consoleAPICalled"
                && e["params"]["type"] == "error"),
            "{seen:?}"
        );
        assert!(
            seen.iter().any(|e| e["method"] == "Runtime.exceptionThrown"),
            "{seen:?}"
        );

        // With the token as Basic credentials, as a browser sends them.
        browser.open(json!({"Authorization": basic("lab", TOKEN)}));
        let start = browser.events.len();
        let list = browser.load(&format!("{base}/ui"));
        assert!(list.contains(&format!("href=\"/ui/jobs/{id}\"")), "{list}");
        assert!(list.contains("BrowserBBHA"));
        let row = browser.eval(&format!(
            "Array.from(document.querySelectorAll('tbody tr')).filter(r => r.querySelector('a[href=\"/ui/jobs/{id}\"]')).map(r => r.innerText).join('|')"
        ));
        let row = row.as_str().unwrap().to_owned();
        for part in ["exp-browser", "RUNNING", "local", "0.5200"] {
            assert!(row.contains(part), "{part} not in the row: {row}");
        }
        assert_eq!(browser.eval("document.querySelector('tbody progress').value"), json!(14));
        let list_shot = browser.screenshot(&shots.join("list.png"));
        let list_complaints = browser.complaints(start);

        let start = browser.events.len();
        let page = browser.load(&format!("{base}/ui/jobs/{id}"));
        assert!(page.contains("<svg class=\"plot\""), "{page}");
        assert_eq!(
            browser.eval("document.querySelectorAll('svg.plot polyline').length"),
            json!(2)
        );
        assert_eq!(
            browser.eval("document.querySelector('svg.plot title').textContent"),
            json!("Best fitness and molecules per iteration")
        );
        // The plot has room on the page: the style applied (the policy let it).
        let width = browser.eval("document.querySelector('svg.plot').getBoundingClientRect().width");
        assert!(width.as_f64().unwrap() > 300.0, "{width}");
        let job_shot = browser.screenshot(&shots.join("job.png"));
        let job_complaints = browser.complaints(start);
        let _ = browser.call("Browser.close", json!({}));
        (list_shot, job_shot, list_complaints, job_complaints)
    })
    .await
    .unwrap();
    let (list_shot, job_shot, list_complaints, job_complaints) = outcome;
    assert!(list_complaints.is_empty(), "/ui: {list_complaints:?}");
    assert!(job_complaints.is_empty(), "job page: {job_complaints:?}");
    assert!(
        list_shot > 5_000 && job_shot > 5_000,
        "{list_shot} {job_shot}"
    );
    service.go_past("BrowserBBHA", 2);
}
