//! What a command reports when it fails, and the exit code that goes with it.

use std::process::ExitCode;

use mcpvisor_model::ConfigErrors;
use mcpvisor_supervisor::{CallError, LookupError, StoreError};

/// The exit codes of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Exit {
    /// 0: done.
    Ok,
    /// 1: the operation failed (a tool reported an error, a timeout, a service did not come
    /// up, the instance is not reachable...).
    Failed,
    /// 2: bad input (arguments, JSON, config, unknown service or tool).
    BadInput,
}

impl From<Exit> for u8 {
    fn from(e: Exit) -> u8 {
        match e {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::BadInput => 2,
        }
    }
}

impl TryFrom<u8> for Exit {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            0 => Ok(Exit::Ok),
            1 => Ok(Exit::Failed),
            2 => Ok(Exit::BadInput),
            other => Err(format!("unknown exit code {other}")),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(u8::from(e))
    }
}

/// A failed command: the message for the user (possibly several lines) and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// 1 or 2.
    pub code: Exit,
    /// What went wrong and what to do.
    pub message: String,
}

impl CliError {
    /// Exit 1: the operation failed.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            code: Exit::Failed,
            message: message.into(),
        }
    }

    /// Exit 2: bad input.
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            code: Exit::BadInput,
            message: message.into(),
        }
    }

    /// Every error of a config, one per line, each prefixed with `origin` (the file).
    pub fn config(origin: &str, errors: &ConfigErrors) -> Self {
        let lines: Vec<String> = errors.iter().map(|e| format!("{origin}: {e}")).collect();
        CliError::bad_input(lines.join("\n"))
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// JSON-RPC codes meaning the request itself was wrong (unknown method or bad params).
const JSONRPC_BAD_REQUEST: [i32; 2] = [-32601, -32602];

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            // A name that is right, of a service that is down: the operation failed.
            StoreError::Lookup(LookupError::ServiceNotUp { .. }) => Exit::Failed,
            StoreError::Config(_)
            | StoreError::Load { .. }
            | StoreError::AlreadyExists(_)
            | StoreError::UnknownPrompt { .. }
            | StoreError::UnknownResource { .. }
            | StoreError::Lookup(_) => Exit::BadInput,
            StoreError::Call(CallError::Rejected { code, .. })
                if JSONRPC_BAD_REQUEST.contains(code) =>
            {
                Exit::BadInput
            }
            _ => Exit::Failed,
        };
        CliError {
            code,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::failed(e.to_string())
    }
}

/// The result of a command.
pub type CliResult<T> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvisor_supervisor::LookupError;

    #[test]
    fn unknown_names_and_bad_config_are_bad_input_other_failures_are_not() {
        let unknown = StoreError::Lookup(LookupError::UnknownTool {
            name: "x".into(),
            suggestions: vec![],
        });
        assert_eq!(CliError::from(unknown).code, Exit::BadInput);
        let down = StoreError::Lookup(LookupError::ServiceNotUp {
            service: "s".into(),
            state: mcpvisor_model::ServiceState::Reconnecting,
            reason: "connection refused".into(),
        });
        assert_eq!(CliError::from(down).code, Exit::Failed);
        let rejected = StoreError::Call(CallError::Rejected {
            service: "s".into(),
            tool: "t".into(),
            code: -32602,
            message: "bad".into(),
        });
        assert_eq!(CliError::from(rejected).code, Exit::BadInput);
        let timeout = StoreError::Call(CallError::Timeout {
            service: "s".into(),
            tool: "t".into(),
            after: std::time::Duration::from_secs(1),
        });
        assert_eq!(CliError::from(timeout).code, Exit::Failed);
        assert_eq!(
            CliError::from(StoreError::NotRunning("gone".into())).code,
            Exit::Failed
        );
    }

    #[test]
    fn exit_codes_round_trip_as_numbers() {
        assert_eq!(serde_json::to_string(&Exit::BadInput).unwrap(), "2");
        assert_eq!(serde_json::from_str::<Exit>("1").unwrap(), Exit::Failed);
        assert!(serde_json::from_str::<Exit>("7").is_err());
    }
}
