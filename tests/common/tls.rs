//! A throwaway CA and a server certificate for `localhost` / `127.0.0.1`,
//! made with the openssl CLI at test time (nothing secret is checked in).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    /// The CA certificate to trust (the publisher's `ca_file`).
    pub ca_pem: PathBuf,
    /// Server certificate (signed by the CA) and its key, for nginx.
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestCa {
    /// A CA (basicConstraints CA:TRUE) and a leaf certificate for `localhost`
    /// and `127.0.0.1`: webpki refuses a self-signed CA certificate used
    /// directly as a server certificate, so the two are kept apart.
    pub fn generate(dir: &Path) -> TestCa {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fieldcast test CA"]);
        openssl(dir, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
        openssl(dir, &csr);
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        TestCa { ca_pem: dir.join("ca.pem"), cert_pem: dir.join("server.pem"), key_pem: dir.join("server.key") }
    }

    /// A client certificate for `cn`, signed by this CA (mutual TLS):
    /// (certificate, key) PEM files in `dir`.
    pub fn issue_client(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
        let (key, csr, cert, ext) = (format!("{cn}.key"), format!("{cn}.csr"), format!("{cn}.pem"), format!("{cn}.ext"));
        let subj = format!("/CN={cn}");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        std::fs::write(dir.join(&ext), "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n").unwrap();
        let (ca, ca_key) = (self.ca_pem.to_str().unwrap(), self.ca_pem.with_file_name("ca.key"));
        openssl(dir, &["x509", "-req", "-in", &csr, "-CA", ca, "-CAkey", ca_key.to_str().unwrap(), "-CAcreateserial", "-out", &cert, "-days", "2", "-extfile", &ext]);
        (dir.join(cert), dir.join(key))
    }
}
