//! Authentication: who a request is from. Client certificates signed by the cluster CA
//! (CN = user, O = groups) and bearer tokens from a static token file; anything else is
//! `system:anonymous`. Authorization (RBAC) is a later layer; until then every
//! authenticated user may do everything and anonymous users only read health and version.

use std::collections::HashMap;
use std::path::Path;

/// The authenticated user of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn anonymous() -> Self {
        UserInfo {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }
}

/// Tokens from a static token file (upstream's `--token-auth-file`: CSV lines
/// `token,user,uid,"group1,group2"`).
#[derive(Default, Debug, Clone)]
pub struct StaticTokens {
    tokens: HashMap<String, UserInfo>,
}

impl StaticTokens {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                return Err(format!(
                    "token file {} line {}: want token,user,uid[,\"groups\"]",
                    path.display(),
                    n + 1
                ));
            }
            let mut groups: Vec<String> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            tokens.insert(
                fields[0].clone(),
                UserInfo {
                    name: fields[1].clone(),
                    groups,
                },
            );
        }
        Ok(StaticTokens { tokens })
    }

    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields.into_iter().map(|f| f.trim().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# comment\nabc,alice,1,\"system:masters,dev\"\ndef,bob,2\n",
        )
        .unwrap();
        let t = StaticTokens::load(&path).unwrap();
        let alice = t.lookup("abc").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(
            alice.groups,
            ["system:masters", "dev", "system:authenticated"]
        );
        assert_eq!(t.lookup("def").unwrap().groups, ["system:authenticated"]);
        assert!(t.lookup("nope").is_none());
        std::fs::write(&path, "onlytoken\n").unwrap();
        assert!(StaticTokens::load(&path).is_err());
    }
}
