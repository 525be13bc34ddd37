//! The CNI plugin the runtime executes: it parses the invocation, answers `VERSION` itself and
//! hands everything else to the node daemon over its unix socket (one JSON line each way). It
//! holds no credentials and keeps no state.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;

use crate::cni::{self, CniError, Command, Invocation, code};
use crate::protocol::Response;

/// How long the daemon may take for one command (ADD waits for Neutron, bounded below this).
const DAEMON_TIMEOUT: Duration = Duration::from_secs(120);

/// What the plugin prints and its exit code.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Standard output (a result, an error, or nothing).
    pub stdout: String,
    /// The exit code.
    pub code: i32,
}

fn failure(error: &CniError) -> Outcome {
    Outcome {
        stdout: serde_json::to_string(error).unwrap_or_default(),
        code: 1,
    }
}

/// Runs one invocation.
pub fn run(var: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let invocation = match cni::parse(var, stdin) {
        Ok(invocation) => invocation,
        Err(error) => return failure(&error),
    };
    if invocation.command == Command::Version {
        let requested = serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_owned));
        return Outcome {
            stdout: cni::version_answer(requested.as_deref()).to_string(),
            code: 0,
        };
    }
    match ask_daemon(&invocation) {
        Ok(Value::Null) => Outcome {
            stdout: String::new(),
            code: 0,
        },
        Ok(result) => Outcome {
            stdout: result.to_string(),
            code: 0,
        },
        Err(error) => failure(&error.version(&invocation.cni_version)),
    }
}

fn ask_daemon(invocation: &Invocation) -> Result<Value, CniError> {
    let socket = &invocation.daemon_socket;
    let unreachable = |e: std::io::Error| {
        let code = if invocation.command == Command::Status {
            code::PLUGIN_NOT_AVAILABLE
        } else {
            code::TRY_AGAIN_LATER
        };
        CniError::new(
            code,
            format!("the kubestack node daemon is not reachable at {socket}: {e}"),
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(DAEMON_TIMEOUT))
        .map_err(unreachable)?;
    let mut request = serde_json::to_vec(invocation)
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("encoding the request: {e}")))?;
    request.push(b'\n');
    stream.write_all(&request).map_err(unreachable)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            format!("reading the daemon's answer from {socket}: {e}"),
        )
    })?;
    match serde_json::from_str::<Response>(&line) {
        Ok(Response::Result(value)) => Ok(value),
        Ok(Response::Error(error)) => Err(error),
        Err(e) => Err(CniError::new(
            code::IO_FAILURE,
            format!(
                "the daemon at {socket} answered something that is not a response ({e}): {line:?}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_answered_without_the_daemon() {
        let outcome = run(
            |k| (k == "CNI_COMMAND").then(|| "VERSION".to_owned()),
            br#"{"cniVersion":"1.0.0"}"#,
        );
        assert_eq!(outcome.code, 0);
        let answer: Value = serde_json::from_str(&outcome.stdout).unwrap();
        assert_eq!(answer["cniVersion"], "1.0.0");
        assert_eq!(
            answer["supportedVersions"],
            serde_json::json!(["1.0.0", "1.1.0"])
        );
    }

    #[test]
    fn a_missing_daemon_is_an_error_with_a_code_and_status_says_not_available() {
        let conf = br#"{"cniVersion":"1.1.0","name":"n","type":"kubestack","daemonSocket":"/nonexistent/kubestack.sock"}"#;
        let status = run(|k| (k == "CNI_COMMAND").then(|| "STATUS".to_owned()), conf);
        assert_eq!(status.code, 1);
        let error: CniError = serde_json::from_str(&status.stdout).unwrap();
        assert_eq!(error.code, code::PLUGIN_NOT_AVAILABLE);
        assert!(
            error.msg.contains("/nonexistent/kubestack.sock"),
            "{}",
            error.msg
        );
        assert_eq!(error.cni_version, "1.1.0");
    }

    #[test]
    fn bad_input_is_an_error_json_on_stdout() {
        let outcome = run(|k| (k == "CNI_COMMAND").then(|| "ADD".to_owned()), b"{");
        assert_eq!(outcome.code, 1);
        let error: CniError = serde_json::from_str(&outcome.stdout).unwrap();
        assert_eq!(error.code, code::DECODING_FAILURE);
    }
}
