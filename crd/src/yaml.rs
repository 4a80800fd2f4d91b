//! YAML reading and writing, behind one module so the crate choice is one
//! line. `serde-saphyr` is the maintained crate kube itself moved to.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A YAML document that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

/// Serializes `value` as one YAML document.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_saphyr::to_string(value).map_err(|e| YamlError(e.to_string()))
}

/// Parses one YAML document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| YamlError(e.to_string()))
}
