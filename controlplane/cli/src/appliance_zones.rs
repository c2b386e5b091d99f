//! The zones an appliance configuration (`bulkheadd.toml`) binds, read for
//! `bulkctl policy lint --appliance FILE`: `bulkctl` does not link the
//! appliance, so only the keys that bind zones are read here
//! (`dataplane.wire[].zones` and `dataplane.wire[].vlan_zones[].zone`).

use std::collections::BTreeSet;
use std::path::Path;

/// Every zone `path` binds, or a message naming the file and the problem.
pub fn bound_zones(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read appliance config {}: {e}", path.display()))?;
    zones_of(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn zones_of(text: &str) -> Result<BTreeSet<String>, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.to_string().trim_end().replace('\n', " "))?;
    let mut out = BTreeSet::new();
    let wires = doc
        .get("dataplane")
        .and_then(|d| d.get("wire"))
        .and_then(|w| w.as_array())
        .ok_or("no dataplane.wire: not an appliance configuration")?;
    for (i, w) in wires.iter().enumerate() {
        if let Some(z) = w.get("zones") {
            let z = z.as_array().filter(|z| z.len() == 2).ok_or(format!(
                "dataplane.wire[{i}].zones: expected two zone names"
            ))?;
            for name in z {
                let name = name
                    .as_str()
                    .ok_or(format!("dataplane.wire[{i}].zones: expected strings"))?;
                out.insert(name.to_string());
            }
        }
        for v in w
            .get("vlan_zones")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let name = v.get("zone").and_then(|z| z.as_str()).ok_or(format!(
                "dataplane.wire[{i}].vlan_zones: an entry has no zone"
            ))?;
            out.insert(name.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_side_and_vlan_zones() {
        let z = zones_of(
            "[policy]\nfile = \"p.yaml\"\n[dataplane]\nwire = [{ a = \"x\", b = \"y\", zones = [\"edge\", \"core\"], vlan_zones = [{ side = \"a\", vlan = 7, zone = \"lab\" }] }, { a = \"p\", b = \"q\" }]\n",
        )
        .unwrap();
        assert_eq!(z.into_iter().collect::<Vec<_>>(), ["core", "edge", "lab"]);
    }

    #[test]
    fn refuses_what_is_not_an_appliance_config() {
        assert!(zones_of("[x]\ny = 1\n")
            .unwrap_err()
            .contains("dataplane.wire"));
        assert!(zones_of("not toml [").is_err());
        let e = zones_of("[dataplane]\nwire = [{ a = \"x\", b = \"y\", zones = [\"one\"] }]\n")
            .unwrap_err();
        assert!(e.contains("wire[0].zones"), "{e}");
    }
}
