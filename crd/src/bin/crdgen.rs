//! Writes the CustomResourceDefinitions of imprint's resources as YAML, one
//! file each, into the folder given (default `manifests/crds`).

use std::path::PathBuf;

use imprint_crd::profile::BehaviorProfile;
use imprint_crd::report::ContainerBehaviorReport;
use imprint_crd::yaml;
use kube::CustomResourceExt;

/// Removes `format: uint8|16|32|64` (schemars writes them for unsigned
/// integers; the API server knows only int32 and int64 and warns on every
/// apply). The `minimum: 0` next to them stays.
fn strip_unsigned_formats(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map
                .get("format")
                .and_then(|f| f.as_str())
                .is_some_and(|f| f.starts_with("uint"))
            {
                map.remove("format");
            }
            map.values_mut().for_each(strip_unsigned_formats);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_unsigned_formats),
        _ => {}
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "manifests/crds".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let crds = [
        (
            "containerbehaviorreports.imprint.dev.yaml",
            ContainerBehaviorReport::crd(),
        ),
        ("behaviorprofiles.imprint.dev.yaml", BehaviorProfile::crd()),
    ];
    for (file, crd) in crds {
        let path = dir.join(file);
        let mut value = serde_json::to_value(&crd)?;
        strip_unsigned_formats(&mut value);
        std::fs::write(&path, yaml::to_string(&value)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
