//! `include` with globs (sorted), relative resolution, loops, and errors in included files.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use xvrrp::config;

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "xvrrp-config-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn instance(name: &str, vrid: u8) -> String {
    format!("vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id {vrid}\n}}\n")
}

#[test]
fn glob_include_is_sorted_and_relative_to_the_including_file() {
    let d = temp_dir("glob");
    fs::create_dir_all(d.join("conf.d")).unwrap();
    fs::write(d.join("conf.d/20-b.conf"), instance("B", 2)).unwrap();
    fs::write(d.join("conf.d/10-a.conf"), instance("A", 1)).unwrap();
    fs::write(d.join("conf.d/30-c.conf"), instance("C", 3)).unwrap();
    fs::write(d.join("conf.d/ignored.txt"), "garbage {").unwrap();
    // sub/nested.conf includes ../conf.d/*.conf: relative to its own directory, not main.conf's.
    fs::create_dir_all(d.join("sub")).unwrap();
    fs::write(d.join("sub/nested.conf"), "include ../conf.d/*.conf\n").unwrap();
    fs::write(
        d.join("main.conf"),
        "vrrp_script s {\n script x\n}\ninclude sub/nested.conf\n",
    )
    .unwrap();
    let l = config::load(&d.join("main.conf")).unwrap();
    let names: Vec<&str> = l.config.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["A", "B", "C"]);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn include_inside_a_block() {
    let d = temp_dir("inblock");
    fs::write(d.join("peers.conf"), "unicast_peer {\n  10.0.0.2\n}\n").unwrap();
    fs::write(
        d.join("main.conf"),
        "vrrp_instance V {\n interface eth0\n virtual_router_id 5\n include peers.conf\n}\n",
    )
    .unwrap();
    let l = config::load(&d.join("main.conf")).unwrap();
    assert_eq!(l.config.instances[0].unicast_peers.len(), 1);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn errors_in_included_files_name_that_file() {
    let d = temp_dir("errfile");
    let inc = d.join("inc.conf");
    fs::write(
        &inc,
        "vrrp_instance X {\n  interface eth0\n  virtual_router_id 1\n  priorty 5\n}\n",
    )
    .unwrap();
    fs::write(d.join("main.conf"), "! main\ninclude inc.conf\n").unwrap();
    let e = config::load(&d.join("main.conf")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4:3: priorty: unknown keyword 'priorty' in vrrp_instance; did you mean 'priority'?",
            inc.display()
        )
    );
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn include_loops_are_errors() {
    let d = temp_dir("loop");
    fs::write(d.join("a.conf"), "include b.conf\n").unwrap();
    fs::write(d.join("b.conf"), "include a.conf\n").unwrap();
    let main = d.join("a.conf");
    let e = config::load(&main).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    let err = &e.errors[0];
    assert_eq!(err.keyword, "include");
    assert_eq!((err.pos.line, err.pos.column), (1, 9));
    assert_eq!(&*err.pos.file, d.join("b.conf").to_str().unwrap());
    assert!(err.message.starts_with("include loop: "), "{}", err.message);
    assert!(err.message.ends_with("a.conf"), "{}", err.message);

    // A file including itself.
    fs::write(d.join("self.conf"), "include self.conf\n").unwrap();
    let e = config::load(&d.join("self.conf")).unwrap_err();
    assert!(e.errors[0].message.starts_with("include loop"), "{e}");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn missing_files() {
    let d = temp_dir("missing");
    fs::write(
        d.join("main.conf"),
        "include nothere.conf\ninclude none/*.conf\n",
    )
    .unwrap();
    let e = config::load(&d.join("main.conf")).unwrap_err();
    assert_eq!(e.errors.len(), 1);
    assert_eq!((e.errors[0].pos.line, e.errors[0].pos.column), (1, 9));
    assert!(e.errors[0].message.contains("cannot read"), "{e}");
    assert_eq!(e.warnings.len(), 1);
    assert!(e.warnings[0].message.contains("matches no files"));

    let e = config::load(&d.join("absent.conf")).unwrap_err();
    assert!(e.to_string().contains("cannot read configuration file"));
    let _ = fs::remove_dir_all(&d);
}
