//! Typed configuration errors. Every variant names the service and the field it is about, and
//! its message says what to change.

use std::fmt;

/// One problem found in a configuration. `service` is the service's name as written (or
/// `<top level>` for document-wide problems); `field` is the path inside that service, such as
/// `health.interval` or `args[2]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not JSON.
    #[error("config is not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read config file {path}: {message}")]
    Io {
        /// The path given.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// The document is JSON but in none of the accepted shapes.
    #[error("config shape not recognised: {message}; expected {{\"mcpServers\": {{name: {{...}}}}}}, {{\"servers\": ...}}, one service with \"name\", a map of services, or a list of services")]
    Shape {
        /// What was found instead.
        message: String,
    },
    /// A service (or agent) name breaks the naming rules.
    #[error("service '{service}': invalid name: {reason}; a name is 1-64 characters of A-Z a-z 0-9 _ - and must not contain '__'")]
    InvalidName {
        /// The offending name.
        service: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Two services share a name.
    #[error("service '{service}': defined more than once; names must be unique")]
    DuplicateName {
        /// The repeated name.
        service: String,
    },
    /// Both `command` and `url` are set.
    #[error("service '{service}': both 'command' and 'url' are set; a service is either a local process (command) or a remote server (url), remove one")]
    CommandAndUrl {
        /// The service.
        service: String,
    },
    /// Neither `command` nor `url` is set.
    #[error("service '{service}': neither 'command' nor 'url' is set; add \"command\" for a local server or \"url\" for a remote one")]
    MissingCommandOrUrl {
        /// The service.
        service: String,
    },
    /// A field has the wrong JSON type or an out-of-range value.
    #[error("service '{service}': field '{field}': expected {expected}, found {found}")]
    InvalidValue {
        /// The service.
        service: String,
        /// The field path.
        field: String,
        /// What is accepted.
        expected: String,
        /// What was written.
        found: String,
    },
    /// A duration string does not parse.
    #[error("service '{service}': field '{field}': '{value}' is not a duration ({reason}); write e.g. \"250ms\", \"10s\" or \"5m\"")]
    InvalidDuration {
        /// The service.
        service: String,
        /// The field path.
        field: String,
        /// The text written.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// `transport` names no known transport.
    #[error("service '{service}': field '{field}': unknown transport '{value}'; use \"stdio\", \"streamable-http\" (alias \"http\") or \"sse\"")]
    UnknownTransport {
        /// The service.
        service: String,
        /// `transport` or `type`.
        field: String,
        /// The value written.
        value: String,
    },
    /// The explicit transport does not fit the kind of service.
    #[error("service '{service}': field '{field}': transport '{transport}' does not fit a service with '{kind}'; {hint}")]
    TransportMismatch {
        /// The service.
        service: String,
        /// `transport` or `type`.
        field: String,
        /// The transport written.
        transport: String,
        /// `command` or `url`.
        kind: String,
        /// How to fix it.
        hint: String,
    },
    /// A `${VAR}` reference has no value and no default.
    #[error("service '{service}': field '{field}': environment variable '{variable}' is not set; set it or write ${{{variable}:-default}}")]
    UndefinedVariable {
        /// The service.
        service: String,
        /// The field path.
        field: String,
        /// The variable name.
        variable: String,
    },
    /// A `${` with no closing brace, or an empty variable name.
    #[error("service '{service}': field '{field}': malformed variable reference in '{value}'; write ${{NAME}} or ${{NAME:-default}}")]
    BadVariableSyntax {
        /// The service.
        service: String,
        /// The field path.
        field: String,
        /// The text written.
        value: String,
    },
    /// A URL does not parse or is not http(s).
    #[error("service '{service}': field '{field}': '{value}' is not a usable URL ({reason})")]
    InvalidUrl {
        /// The service.
        service: String,
        /// The field path.
        field: String,
        /// The URL written (after expansion).
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// `depends_on` names a service that does not exist.
    #[error("service '{service}': field 'depends_on': unknown service '{dependency}'{suggestion}")]
    UnknownDependency {
        /// The dependent service.
        service: String,
        /// The missing dependency.
        dependency: String,
        /// ", did you mean 'x'?" or empty.
        suggestion: String,
    },
    /// The dependencies form a cycle.
    #[error("service '{service}': field 'depends_on': dependency cycle {}", cycle.join(" -> "))]
    DependencyCycle {
        /// The first service of the cycle.
        service: String,
        /// The cycle, first service repeated at the end (`a -> b -> a`).
        cycle: Vec<String>,
    },
}

impl ConfigError {
    /// The service this error is about, or `None` for document-wide errors.
    pub fn service(&self) -> Option<&str> {
        match self {
            ConfigError::Syntax { .. } | ConfigError::Io { .. } | ConfigError::Shape { .. } => None,
            ConfigError::InvalidName { service, .. }
            | ConfigError::DuplicateName { service }
            | ConfigError::CommandAndUrl { service }
            | ConfigError::MissingCommandOrUrl { service }
            | ConfigError::InvalidValue { service, .. }
            | ConfigError::InvalidDuration { service, .. }
            | ConfigError::UnknownTransport { service, .. }
            | ConfigError::TransportMismatch { service, .. }
            | ConfigError::UndefinedVariable { service, .. }
            | ConfigError::BadVariableSyntax { service, .. }
            | ConfigError::InvalidUrl { service, .. }
            | ConfigError::UnknownDependency { service, .. }
            | ConfigError::DependencyCycle { service, .. } => Some(service),
        }
    }

    /// The field path this error is about, if it is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::InvalidValue { field, .. }
            | ConfigError::InvalidDuration { field, .. }
            | ConfigError::UnknownTransport { field, .. }
            | ConfigError::TransportMismatch { field, .. }
            | ConfigError::UndefinedVariable { field, .. }
            | ConfigError::BadVariableSyntax { field, .. }
            | ConfigError::InvalidUrl { field, .. } => Some(field),
            ConfigError::UnknownDependency { .. } | ConfigError::DependencyCycle { .. } => {
                Some("depends_on")
            }
            ConfigError::CommandAndUrl { .. } | ConfigError::MissingCommandOrUrl { .. } => {
                Some("command")
            }
            ConfigError::InvalidName { .. } | ConfigError::DuplicateName { .. } => Some("name"),
            _ => None,
        }
    }
}

/// Every problem found in one document, in the order found. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
    /// How many errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Always false: a `ConfigErrors` holds at least one error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The first error.
    pub fn first(&self) -> Option<&ConfigError> {
        self.0.first()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Short description of a JSON value's type for error messages.
pub(crate) fn describe(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("string \"{}...\"", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("string \"{s}\""),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
