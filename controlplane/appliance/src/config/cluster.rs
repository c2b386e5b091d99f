//! The `[cluster]` section: this appliance as a member of a Raft cluster
//! that replicates one policy (instead of a `[policy]` file).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Cluster mode. The node's name is `[node] name`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Where the Raft log, hard state and snapshots live (created if missing).
    pub data_dir: PathBuf,
    /// One address for peers and management clients (gRPC over mutual TLS).
    pub listen: SocketAddr,
    /// The address other members and clients reach this one at, when it
    /// differs from `listen` (e.g. `listen = "0.0.0.0:7443"`).
    #[serde(default)]
    pub advertise: Option<SocketAddr>,
    /// Directory with `ca.crt` and this node's `NAME.crt` / `NAME.key`
    /// (`bulkctl pki init` / `bulkctl pki issue`).
    pub pki: PathBuf,
    /// The founding members, `NAME=ADDR:PORT` each (this node among them).
    /// Every founding member gets the same list.
    #[serde(default)]
    pub initial_cluster: Vec<String>,
    /// Instead of `initial_cluster`: a member of a running cluster; this
    /// node waits there to be added (`bulkctl cluster add-member`).
    #[serde(default)]
    pub join: Option<SocketAddr>,
    /// Identities granted `admin` when the cluster is founded.
    #[serde(default = "default_admins")]
    pub admins: Vec<String>,
}

fn default_admins() -> Vec<String> {
    vec!["admin".to_string()]
}

/// One founding member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Founder {
    pub name: String,
    pub address: SocketAddr,
}

impl ClusterConfig {
    /// The address this node is known by.
    pub fn address(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.listen)
    }

    /// `initial_cluster` parsed; every entry must be `NAME=ADDR:PORT`, names
    /// and addresses unique.
    pub fn founders(&self) -> Result<Vec<Founder>, String> {
        let mut out: Vec<Founder> = Vec::new();
        for entry in &self.initial_cluster {
            let (name, addr) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not NAME=ADDR:PORT"))?;
            bulkhead_policy::check_name(name)
                .map_err(|e| format!("{entry:?}: member name: {e}"))?;
            let address: SocketAddr = addr
                .parse()
                .map_err(|_| format!("{entry:?}: {addr:?} is not ADDR:PORT"))?;
            if out.iter().any(|f| f.name == name) {
                return Err(format!("member {name} is listed twice"));
            }
            if out.iter().any(|f| f.address == address) {
                return Err(format!("address {address} is listed twice"));
            }
            out.push(Founder {
                name: name.to_string(),
                address,
            });
        }
        Ok(out)
    }

    /// Everything serde cannot check; `node` is this node's name. Returns
    /// the key at fault and the reason.
    pub fn check(&self, node: &str) -> Result<(), (&'static str, String)> {
        bulkhead_policy::check_name(node).map_err(|e| ("node.name", e.to_string()))?;
        match (&self.join, self.initial_cluster.is_empty()) {
            (Some(_), false) => {
                return Err((
                    "cluster.join",
                    "give either initial_cluster (founding) or join (added later), not both".into(),
                ))
            }
            (None, true) => {
                return Err((
                    "cluster.initial_cluster",
                    "a founding member lists every founder (NAME=ADDR:PORT); a later one sets join"
                        .into(),
                ))
            }
            _ => {}
        }
        let founders = self
            .founders()
            .map_err(|e| ("cluster.initial_cluster", e))?;
        if !founders.is_empty() {
            match founders.iter().find(|f| f.name == node) {
                None => {
                    return Err((
                        "cluster.initial_cluster",
                        format!("this node ({node}) is not among the founders"),
                    ))
                }
                Some(f) if f.address != self.address() => {
                    return Err((
                        "cluster.initial_cluster",
                        format!(
                            "this node ({node}) is listed at {} but listens at {}",
                            f.address,
                            self.address()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        if self.address().ip().is_unspecified() {
            return Err((
                "cluster.advertise",
                format!(
                    "listen is {}: set advertise to the address members reach this node at",
                    self.listen
                ),
            ));
        }
        if self.admins.is_empty() {
            return Err((
                "cluster.admins",
                "at least one identity must be admin".into(),
            ));
        }
        for a in &self.admins {
            bulkhead_policy::check_name(a)
                .map_err(|e| ("cluster.admins", format!("{a:?}: {e}")))?;
        }
        Ok(())
    }

    /// This node's certificate and key in the PKI directory.
    pub fn cert_paths(&self, node: &str) -> (PathBuf, PathBuf) {
        (
            self.pki.join(format!("{node}.crt")),
            self.pki.join(format!("{node}.key")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(initial: &[&str], join: Option<&str>) -> ClusterConfig {
        ClusterConfig {
            data_dir: "/tmp/x".into(),
            listen: "127.0.0.1:7001".parse().unwrap(),
            advertise: None,
            pki: "/tmp/pki".into(),
            initial_cluster: initial.iter().map(|s| s.to_string()).collect(),
            join: join.map(|j| j.parse().unwrap()),
            admins: default_admins(),
        }
    }

    #[test]
    fn founders_parse_and_include_self() {
        let c = cfg(&["gw-1=127.0.0.1:7001", "gw-2=127.0.0.1:7002"], None);
        assert_eq!(c.founders().unwrap().len(), 2);
        assert!(c.check("gw-1").is_ok());
        let (key, msg) = c.check("gw-3").unwrap_err();
        assert_eq!(key, "cluster.initial_cluster");
        assert!(msg.contains("not among the founders"), "{msg}");
        let (_, msg) = c.check("gw-2").unwrap_err();
        assert!(msg.contains("listed at 127.0.0.1:7002"), "{msg}");
    }

    #[test]
    fn bad_founder_lists_are_refused_by_entry() {
        let c = cfg(&["gw-1=127.0.0.1:7001", "gw-1=127.0.0.1:7002"], None);
        assert!(c.founders().unwrap_err().contains("listed twice"));
        let c = cfg(&["gw-1@127.0.0.1:7001"], None);
        assert!(c.founders().unwrap_err().contains("NAME=ADDR:PORT"));
        let c = cfg(&["gw-1=localhost"], None);
        assert!(c.founders().unwrap_err().contains("not ADDR:PORT"));
    }

    #[test]
    fn join_and_initial_cluster_exclude_each_other() {
        let c = cfg(&["gw-1=127.0.0.1:7001"], Some("127.0.0.1:7002"));
        assert_eq!(c.check("gw-1").unwrap_err().0, "cluster.join");
        let c = cfg(&[], None);
        assert_eq!(c.check("gw-1").unwrap_err().0, "cluster.initial_cluster");
        let c = cfg(&[], Some("127.0.0.1:7002"));
        assert!(c.check("gw-4").is_ok());
    }

    #[test]
    fn unspecified_listen_needs_advertise() {
        let mut c = cfg(&[], Some("127.0.0.1:7002"));
        c.listen = "0.0.0.0:7001".parse().unwrap();
        assert_eq!(c.check("gw-4").unwrap_err().0, "cluster.advertise");
        c.advertise = Some("127.0.0.1:7001".parse().unwrap());
        assert!(c.check("gw-4").is_ok());
    }

    #[test]
    fn a_config_file_takes_either_policy_or_cluster() {
        use crate::config::Config;
        use std::path::Path;
        let wire = "[dataplane]\neal_args = []\nworkers = [0]\nwire = [{ a = \"net_null0\", b = \"net_null1\" }]\n";
        let cluster = "[node]\nname = \"gw-1\"\n[cluster]\ndata_dir = \"d\"\nlisten = \"127.0.0.1:7001\"\npki = \"pki\"\ninitial_cluster = [\"gw-1=127.0.0.1:7001\"]\n";
        let c = Config::parse(&format!("{cluster}{wire}"), Path::new("/etc/b/gw.toml")).unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(cl.data_dir, Path::new("/etc/b/d"), "relative to the file");
        assert_eq!(cl.admins, ["admin"]);
        let both = format!("[policy]\nfile = \"p.yaml\"\n{cluster}{wire}");
        let e = Config::parse(&both, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not both"), "{e}");
        let e = Config::parse(wire, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[cluster]"), "{e}");
        let typo = cluster.replace("listen", "lisen");
        let e = Config::parse(&format!("{typo}{wire}"), Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "unknown keys are refused: {e}");
    }
}
