//! Writes the CustomResourceDefinitions of imprint's resources as YAML, one
//! file each, into the folder given (default `manifests/crds`).

use std::path::PathBuf;

use imprint_crd::profile::BehaviorProfile;
use imprint_crd::report::ContainerBehaviorReport;
use imprint_crd::yaml;
use kube::CustomResourceExt;

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
        std::fs::write(&path, yaml::to_string(&crd)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
