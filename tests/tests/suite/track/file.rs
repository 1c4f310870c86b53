//! `track_file` in the namespace lab with the tutorial's timers: weight 0 (a non-zero value
//! means FAULT), weighted values moving the priority, `init_file`, and the file being replaced
//! by a rename or deleted (inotify on the directory, no polling).

use std::time::{Duration, Instant};

use xvrrp_tests::site::{expect_instance, expect_state, wait_instance, Site, Timers, FAILOVER};

#[test]
fn weight_0_file_nonzero_value_faults_the_master_and_zero_brings_it_back() {
    let site = Site::new(Timers::Tutorial);
    let file = site.primary.dir().join("state");
    let top = format!(
        "track_file tf {{\n    file {}\n    init_file 0\n}}\n",
        file.display()
    );
    let extra = "    track_file {\n        tf weight 0\n    }\n";
    let agents = site.start_tracking(&top, extra);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        "0",
        "init_file"
    );
    let t = agents[0].tracker("file tf").unwrap();
    assert_eq!(t.kind().as_deref(), Some("file"));
    assert_eq!(t.value(), Some(0));

    let t0 = Instant::now();
    std::fs::write(&file, "1\n").unwrap();
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() == Some("Fault")
    });
    eprintln!("file written -> Fault after {:?}", t0.elapsed());
    assert!(agents[1].wait_state("Master", FAILOVER).is_some());
    let t = agents[0].tracker("file tf").unwrap();
    assert_eq!(t.up(), Some(false), "{t}");
    assert_eq!(t.value(), Some(1), "{t}");

    // Replaced by a rename (how configuration tools write files): seen too.
    let tmp = site.primary.dir().join("state.tmp");
    std::fs::write(&tmp, "0").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    expect_state(&agents, 0, "Master", FAILOVER);
    assert!(agents[1].wait_state("Backup", FAILOVER).is_some());

    // Written again, then deleted: a missing file reads as 0.
    std::fs::write(&file, "7").unwrap();
    assert!(wait_instance(&agents[0], Duration::from_secs(5), |i| i
        .state()
        .as_deref()
        == Some("Fault")));
    std::fs::remove_file(&file).unwrap();
    expect_state(&agents, 0, "Master", FAILOVER);
}

#[test]
fn weighted_file_value_moves_the_priority_and_mastership() {
    let site = Site::new(Timers::Tutorial);
    let file = site.primary.dir().join("prio");
    std::fs::write(&file, "0\n").unwrap();
    let top = format!(
        "track_file tf {{\n    file {}\n    weight 10\n}}\n",
        file.display()
    );
    let extra = "    track_file {\n        tf\n    }\n";
    let agents = site.start_tracking(&top, extra);

    // 200 + 10 x 3 = 230: still Master, priority up.
    std::fs::write(&file, "3").unwrap();
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.effective_priority() == Some(230)
    });
    // 200 + 10 x -15 = 50 < 100: the Backup preempts.
    std::fs::write(&file, "-15").unwrap();
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.effective_priority() == Some(50)
    });
    expect_state(&agents, 1, "Master", FAILOVER);
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() == Some("Backup")
    });
    let t = agents[0].tracker("file tf").unwrap();
    assert_eq!(t.value(), Some(-15), "{t}");
    assert_eq!(t.priority_change(), Some(-150), "{t}");
    assert_eq!(t.up(), Some(true), "a weighted value is not a fault: {t}");

    // -26 x 10 = -260: -254 or less is FAULT (keepalived).
    std::fs::write(&file, "-26").unwrap();
    expect_instance(&agents, 0, Duration::from_secs(5), |i| {
        i.state().as_deref() == Some("Fault")
    });
    // Back to 0: 200 again, the primary preempts.
    std::fs::write(&file, "0").unwrap();
    expect_state(&agents, 0, "Master", FAILOVER);
}
