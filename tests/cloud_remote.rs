//! Training on a rented GPU over SSH, end to end: a GPU quoted and rented
//! from the mock Vast.ai on 127.0.0.1, whose instance's SSH address is a
//! real OpenSSH server here; `ategnatos cloud train` sends Ategnatos and the
//! project there, passes the gates and the dry run there, trains the toy
//! native model there, brings the LoRA home whole and destroys the instance.
//! The connection drops twice on the way (through an `ssh` that cuts the
//! line where the test says): once it is picked up by running the command
//! again, once while following, by reconnecting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod cloud_support;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

/// `ategnatos --root ROOT ARGS…` with the mock provider and our ssh.
async fn ategnatos(
    root: &Path,
    vast: &cloud_support::Provider,
    ssh: &Path,
    key: &Path,
    args: &[&str],
) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ategnatos"))
        .arg("--root")
        .arg(root)
        .args(args)
        .current_dir(root)
        .env("VAST_API_KEY", cloud_support::VAST_KEY)
        .env("ATEGNATOS_VAST_URL", &vast.url)
        .env_remove("RUNPOD_API_KEY")
        .env("ATEGNATOS_RUNPOD_URL", "http://127.0.0.1:9")
        .env("ATEGNATOS_CLOUD_POLL_MS", "5")
        .env("ATEGNATOS_NVML_LIBRARY", "off")
        .env("ATEGNATOS_NVIDIA_SMI", root.join("no-such-nvidia-smi"))
        .env("ATEGNATOS_SSH", ssh)
        .env("ATEGNATOS_SSH_KEY", key)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An `ssh` that is the real one, except: while `drop-dry-run` exists in
/// `dir` every dry run's connection fails, and the first status call that
/// waits on the run (once `drop-status-once` exists) is cut. Every call is
/// logged to `ssh.log`.
fn cutting_ssh(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("ssh");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
d='{d}'
echo "$*" >> "$d/ssh.log"
case "$*" in
  *" dry-run "*)
    if [ -e "$d/drop-dry-run" ]; then echo "Connection closed by 127.0.0.1 port 22" >&2; exit 255; fi ;;
  *" status "*"--wait"*)
    if [ -e "$d/drop-status-once" ]; then rm -f "$d/drop-status-once"; echo "client_loop: send disconnect: Broken pipe" >&2; exit 255; fi ;;
esac
exec ssh "$@"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// A GPU rented the way an artist rents: a quote, then the offer under a
/// cap. Its id.
async fn rented(
    root: &Path,
    vast: &cloud_support::Provider,
    ssh: &Path,
    sshd: &common::sshd::Sshd,
) -> String {
    let (code, out, err) = ategnatos(
        root,
        vast,
        ssh,
        &sshd.key,
        &["cloud", "quote", "--min-vram-gb", "20", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let quote: Value = serde_json::from_str(&out).unwrap();
    let (code, out, err) = ategnatos(
        root,
        vast,
        ssh,
        &sshd.key,
        &[
            "cloud",
            "up",
            "--quote-id",
            quote["quote_id"].as_str().unwrap(),
            "--offer-id",
            "4242",
            "--max-price-per-hour",
            "0.45",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let up: Value = serde_json::from_str(&out).unwrap();
    let id = up["instance"]["instance_id"].as_str().unwrap().to_string();
    if sshd.user != "root" {
        // Vast.ai logs in as root; this server takes the test's own user.
        let ledger = root.join(format!("grimoire/.state/cloud/instances/{id}.json"));
        let text = std::fs::read_to_string(&ledger).unwrap();
        std::fs::write(
            &ledger,
            text.replace(
                "\"user\": \"root\"",
                &format!("\"user\": \"{}\"", sshd.user),
            ),
        )
        .unwrap();
    }
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_trains_on_a_rented_gpu_over_ssh_and_comes_home() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let root = base.join("studio");
    let remote_root = base.join("instance-home/ategnatos-studio");
    std::fs::create_dir_all(&root).unwrap();
    let sshd = common::sshd::start(&base.join("sshd"));
    let ssh = cutting_ssh(&base);
    let vast = cloud_support::vast(sshd.port).await;

    // A toy native project through gates 1 and 2 at home, one checkpoint
    // a epoch.
    common::native::native_project_with(
        &root,
        &["--epochs", "2", "--repeats", "1", "--save-every", "1"],
    );
    let id = rented(&root, &vast, &ssh, &sshd).await;
    let remote_arg = remote_root.display().to_string();
    let train = [
        "cloud",
        "train",
        "fox",
        "--instance",
        &id,
        "--remote-root",
        &remote_arg,
    ];

    // The connection fails at the dry run: the command stops there and
    // says how to go on; what was done stays done.
    std::fs::write(base.join("drop-dry-run"), "").unwrap();
    let (code, out, err) = ategnatos(&root, &vast, &ssh, &sshd.key, &train).await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("lost the connection while the dry run on the instance"),
        "{out}{err}"
    );
    assert!(err.contains("run the same command again"), "{err}");
    assert_eq!(vast.with(|m| m.alive().len()), 1, "still rented");
    // Ategnatos and the project are there; the copies name the instance's
    // folder, not the studio's.
    assert!(remote_root.join(".ategnatos/bin/ategnatos").is_file());
    assert!(remote_root.join("clean").is_dir());
    assert!(remote_root.join(common::native::CHECKPOINT).is_file());
    let engine_toml = common::native::engine_toml(&root);
    let there = remote_root.join(engine_toml.strip_prefix(&root).unwrap());
    let config = std::fs::read_to_string(&there).unwrap();
    assert!(config.contains(&remote_arg), "{config}");
    assert!(
        !config.contains(&format!("{}/", root.display())),
        "{config}"
    );
    let sent_before = std::fs::read_to_string(base.join("ssh.log")).unwrap();

    // Again, through the MCP tool this time, with the line back, and cut
    // once while it follows the run.
    std::fs::remove_file(base.join("drop-dry-run")).unwrap();
    std::fs::write(base.join("drop-status-once"), "").unwrap();
    let mut cfg = cloud_support::config(&vast, None);
    cfg.ssh = ategnatos::cloud::ssh::SshSettings {
        program: ssh.clone(),
        rsync: "rsync".into(),
        key: Some(sshd.key.clone()),
    };
    let shared =
        ategnatos::mcp::Shared::with_cloud(ategnatos::studio::Workspace::open(&root).unwrap(), cfg);
    shared
        .exe
        .set(env!("CARGO_BIN_EXE_ategnatos").into())
        .unwrap();
    let client = common::client::connect_to(shared).await;
    let (text, err, view) = cloud_support::call(
        &client,
        "launch_training",
        serde_json::json!({"project": "fox", "instance_id": id, "wait_seconds": 120}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(text.contains("COMPLETE"), "{text}");
    let r = &view["result"];
    assert!(
        r["remote"]["last_seen"]
            .as_str()
            .unwrap()
            .starts_with(&format!("step {n} of {n}", n = r["run"]["total_steps"])),
        "{r}"
    );
    assert_eq!(r["resumed_at"], "the dry run on the instance", "{r}");
    assert_eq!(r["run"]["state"], "complete", "{r}");
    assert_eq!(r["run"]["backend"], "native", "{r}");
    assert!(r["remote"]["reconnects"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        !std::path::Path::new(&base.join("drop-status-once")).exists(),
        "the follow step never waited on the run"
    );
    // Nothing was sent twice: the second call only received files.
    let log = std::fs::read_to_string(base.join("ssh.log")).unwrap();
    let second = &log[sent_before.len()..];
    assert!(
        !second
            .lines()
            .any(|l| l.contains("rsync --server") && !l.contains("--sender")),
        "uploaded again:\n{second}"
    );

    // The LoRA and the checkpoint are home, whole, where the record says.
    let lora = root.join(r["run"]["final_lora"]["path"].as_str().unwrap());
    let bytes = std::fs::read(&lora).unwrap();
    assert_eq!(
        bytes.len() as u64,
        r["run"]["final_lora"]["bytes"].as_u64().unwrap()
    );
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let meta: Value = serde_json::from_slice(&bytes[8..8 + header]).unwrap();
    assert!(
        meta.as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("lora_down")),
        "{meta}"
    );
    assert_eq!(r["run"]["checkpoints"].as_array().unwrap().len(), 1, "{r}");
    for c in r["run"]["checkpoints"].as_array().unwrap() {
        assert!(root.join(c["path"].as_str().unwrap()).is_file(), "{c}");
    }
    let progress =
        std::fs::read_to_string(root.join(r["run"]["progress_file"].as_str().unwrap())).unwrap();
    assert!(progress.contains("**COMPLETE**"), "{progress}");
    // The run at home reads as the run there did.
    let (code, out, err) = ategnatos(&root, &vast, &ssh, &sshd.key, &["status", "fox"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("COMPLETE"), "{out}");

    // And the instance is destroyed, as the provider itself says.
    assert!(vast.with(|m| m.alive().is_empty()));
    assert!(
        r["remote"]["instance_end"]
            .as_str()
            .unwrap()
            .contains("Nothing bills"),
        "{r}"
    );
    let (code, out, _) = ategnatos(&root, &vast, &ssh, &sshd.key, &["cloud", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("no instance of this studio bills"), "{out}");

    // Asked again, it refuses plainly: that GPU is gone.
    let (text, err, _) = cloud_support::call(
        &client,
        "launch_training",
        serde_json::json!({"project": "fox", "instance_id": id, "wait_seconds": 60}),
    )
    .await;
    assert!(err, "{text}");
    assert!(text.contains("not running") && text.contains(&id), "{text}");
    assert!(vast.with(|m| m.creates) == 1, "nothing rented again");

    // The key never left for anywhere but the provider.
    let mut files = vec![root.clone()];
    while let Some(d) = files.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                files.push(p);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                assert!(!text.contains(cloud_support::VAST_KEY), "{}", p.display());
            }
        }
    }
}

/// The hand-off to SkyPilot: a fake `sky` on PATH records the task; the
/// test then plays the cluster, as SkyPilot would: the file mounts copied
/// under a home of its own, the task's run script run there, which passes
/// the gates and the dry run and trains the toy model.
#[test]
fn a_run_handed_to_skypilot_is_a_task_that_trains_where_it_lands() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let root = base.join("studio");
    std::fs::create_dir_all(&root).unwrap();
    common::native::native_project_with(&root, &["--epochs", "1", "--repeats", "1"]);
    let bin = base.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = base.join("asked.txt");
    std::fs::write(
        bin.join("sky"),
        format!(
            "#!/bin/sh\necho \"$@\" > '{a}'\ncat \"$4\" >> '{a}'\necho 'Job submitted, ID: 1'\n",
            a = asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("sky"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    // Without sky: said, nothing launched.
    let out = common::fake_trainer::ategnatos(&root, None)
        .args(["cloud", "sky", "fox"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("`sky` is not on PATH"));

    let out = common::fake_trainer::ategnatos(&root, None)
        .args(["cloud", "sky", "fox", "--json"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::fake_trainer::said(&out));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cluster = done["launch"]["cluster"].as_str().unwrap().to_string();
    let recorded = std::fs::read_to_string(&asked).unwrap();
    let (args, yaml) = recorded.split_once('\n').unwrap();
    assert!(
        args.starts_with(&format!("launch -c {cluster} ")) && args.ends_with(" -y -d -i 10 --down"),
        "{args}"
    );
    let task: Value = serde_norway::from_str(yaml).unwrap();
    assert_eq!(task["resources"]["autostop"]["down"], true, "{yaml}");
    assert!(
        task["resources"]["disk_size"].as_u64().unwrap() >= 30,
        "{yaml}"
    );
    let mounts = task["file_mounts"].as_object().unwrap();
    for needed in [
        "~/ategnatos-studio/.ategnatos/bin/ategnatos",
        "~/ategnatos-studio/clean",
        &format!("~/ategnatos-studio/{}", common::native::CHECKPOINT),
        "~/ategnatos-studio/grimoire/.state/projects/fox",
    ] {
        assert!(mounts.contains_key(needed), "{needed} not mounted: {yaml}");
    }
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("sky logs {cluster}"))
    );

    // The cluster: the mounts under its home, then the task's run.
    let home = base.join("cluster-home");
    for (there, here) in mounts {
        let there = home.join(there.strip_prefix("~/").unwrap());
        std::fs::create_dir_all(there.parent().unwrap()).unwrap();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(here.as_str().unwrap())
            .arg(&there)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(task["run"].as_str().unwrap())
        .env("HOME", &home)
        .env("ATEGNATOS_NVML_LIBRARY", "off")
        .env("ATEGNATOS_NVIDIA_SMI", base.join("no-such-nvidia-smi"))
        .output()
        .unwrap();
    let said = common::fake_trainer::said(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("COMPLETE"), "{said}");
    let studio = home.join("ategnatos-studio");
    let there = studio.join(
        common::native::engine_toml(&root)
            .strip_prefix(&root)
            .unwrap(),
    );
    let config = std::fs::read_to_string(there).unwrap();
    assert!(config.contains(&studio.display().to_string()), "{config}");
    // The studio at home is as it was.
    let config = std::fs::read_to_string(common::native::engine_toml(&root)).unwrap();
    assert!(!config.contains("cluster-home"), "{config}");
}

/// Stopped while it is still being set up there (the connection lost at
/// the dry run, then the dry run failing there): each says how to go on,
/// and a cancel then does nothing more there and destroys the GPU.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_run_cancelled_before_it_trained_destroys_the_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let root = base.join("studio");
    std::fs::create_dir_all(&root).unwrap();
    let sshd = common::sshd::start(&base.join("sshd"));
    let ssh = cutting_ssh(&base);
    let vast = cloud_support::vast(sshd.port).await;
    common::native::native_project_with(&root, &["--epochs", "1", "--repeats", "1"]);
    let id = rented(&root, &vast, &ssh, &sshd).await;
    let remote_arg = base.join("instance-home/studio").display().to_string();
    std::fs::write(base.join("drop-dry-run"), "").unwrap();
    let train = [
        "cloud",
        "train",
        "fox",
        "--instance",
        &id,
        "--remote-root",
        &remote_arg,
    ];
    let (code, out, err) = ategnatos(&root, &vast, &ssh, &sshd.key, &train).await;
    assert_ne!(code, 0, "{out}{err}");
    assert_eq!(vast.with(|m| m.alive().len()), 1);
    // With the line back, the dry run fails there (its model is gone):
    // said, with how to reach the instance and that it still bills.
    std::fs::remove_file(base.join("drop-dry-run")).unwrap();
    std::fs::remove_file(Path::new(&remote_arg).join(common::native::CHECKPOINT)).unwrap();
    let (code, out, err) = ategnatos(&root, &vast, &ssh, &sshd.key, &train).await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("the dry run did not pass on the instance")
            && err.contains(&format!("ssh -p {} ", sshd.port))
            && err.contains("still bills"),
        "{err}"
    );

    // Where it stands, asked at home.
    let (code, out, err) = ategnatos(&root, &vast, &ssh, &sshd.key, &["status", "fox"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "on its way on rented GPU `{id}`, at the dry run on the instance"
        )) && out.contains("ategnatos cancel fox"),
        "{out}"
    );

    // Not started on a second GPU while this one is on its way.
    let other = rented(&root, &vast, &ssh, &sshd).await;
    let (code, _, err) = ategnatos(
        &root,
        &vast,
        &ssh,
        &sshd.key,
        &["cloud", "train", "fox", "--instance", &other],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "already on its way on instance `{id}` (at the dry run"
        )),
        "{err}"
    );
    let (code, out, err) =
        ategnatos(&root, &vast, &ssh, &sshd.key, &["cloud", "down", &other]).await;
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = ategnatos(&root, &vast, &ssh, &sshd.key, &["cancel", "fox"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Stopped before the training started there") && out.contains("Nothing bills"),
        "{out}"
    );
    assert!(vast.with(|m| m.alive().is_empty()));
    // Nothing was started there after the cancel.
    let log = std::fs::read_to_string(base.join("ssh.log")).unwrap();
    assert!(!log.contains(" train fox"), "{log}");
    // That trip is over: training on that GPU again is refused plainly.
    let (code, _, err) = ategnatos(&root, &vast, &ssh, &sshd.key, &train).await;
    assert_ne!(code, 0);
    assert!(err.contains("not running"), "{err}");
}
