//! `cloudnap check`, `aws-setup` and `credentials`.

use crate::*;

/// `cloudnap aws-setup`: the deadline's role (see [`iam::deadline_role`])
/// in the account of the default credentials, for the resources registered
/// without a profile of their own.
pub(crate) async fn aws_setup(
    paths: &Paths,
    settings: &Settings,
    registry: &Registry,
    cloud: &AwsCloud,
    dry_run: bool,
) -> Result<ExitCode> {
    let region = &settings.aws.regions[0];
    let who = match cloud.whoami(region, None).await {
        Ok(who) => who,
        Err(e) => {
            println!("credentials: FAILED: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let (mine, other): (Vec<_>, Vec<_>) =
        (registry.entries.iter()).partition(|e| e.profile.is_none());
    let ids: Vec<_> = mine.iter().map(|e| e.id.clone()).collect();
    let role = iam::deadline_role(&who.account, &ids);
    for e in other {
        println!(
            "note: {} uses profile {}: not covered (its account needs its own role)",
            e.id,
            e.profile.as_deref().unwrap_or_default()
        );
    }
    if dry_run {
        println!(
            "role {} (dry run: nothing changed)",
            iam::role_arn(&who.account)
        );
        println!("trust policy:\n{:#}", role.trust);
        println!("policy {}:\n{:#}", role.policy_name, role.policy);
        return Ok(ExitCode::SUCCESS);
    }
    let (arn, created) = match cloud.put_role(region, None, &role).await {
        Ok(done) => done,
        Err(e) => {
            println!("IAM: FAILED: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    println!(
        "role {arn} {} (policy {}: {} registered resource(s) and those tagged cloudnap:managed=true)",
        if created { "created" } else { "updated" },
        role.policy_name,
        ids.len()
    );
    if settings.aws.deadline_role_arn.as_deref() != Some(arn.as_str()) {
        let text = std::fs::read_to_string(&paths.settings)?;
        let updated = set_aws_string(&text, "deadline_role_arn", &arn)?;
        write_atomic(&paths.settings, updated.as_bytes())?;
        println!(
            "settings: aws.deadline_role_arn set in {}",
            paths.settings.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn check(
    paths: &Paths,
    settings: &Settings,
    registry: &Registry,
    cloud: &impl CloudControl,
) -> Result<ExitCode> {
    println!("settings:  {} (valid)", paths.settings.display());
    println!(
        "  inactivity timeout {:?}, warning {:?}, regions {}, profile {}, endpoint {}{}",
        settings.activity.inactivity_timeout,
        settings.activity.warning,
        settings.aws.regions.join(","),
        settings.aws.profile.as_deref().unwrap_or("(default chain)"),
        settings.aws.endpoint_url.as_deref().unwrap_or("(AWS)"),
        if settings.aws.dry_run {
            ", DRY RUN"
        } else {
            ""
        }
    );
    println!(
        "  udp server {}:{} ({})",
        settings.udp.ip,
        settings.udp.port,
        if settings.udp.enabled {
            "enabled"
        } else {
            "disabled"
        }
    );
    let count = |k: Kind| registry.entries.iter().filter(|e| e.id.kind() == k).count();
    println!("services:  {} (valid)", paths.services.display());
    let counts: Vec<String> = Kind::ALL
        .iter()
        .map(|&k| format!("{} {k} {}(s)", count(k), k.spec().noun))
        .collect();
    println!("  {}", counts.join(", "));
    for e in registry.entries.iter().filter(|e| !e.policy().is_empty()) {
        println!("  {}: {}", e.id, e.policy());
    }
    for e in registry
        .entries
        .iter()
        .filter(|e| e.id.kind().spec().checked_on_register)
    {
        if let Ok(Observed {
            part_of: Some(reason),
            ..
        }) = cloud.inspect(&e.id, e.profile.as_deref()).await
        {
            println!(
                "  warning: {} is {reason}: sleep leaves it running; register the group instead",
                e.id
            );
        }
    }
    println!("state:     {}", paths.state.display());
    let region = &settings.aws.regions[0];
    let aws = &settings.aws;
    // The deadline's state; cloudnap works without it, so it never fails
    // the check.
    match (&aws.deadline_role_arn, aws.deadline) {
        (_, false) => println!("deadline:  off (aws.deadline: false)"),
        (None, true) => println!(
            "deadline:  NOT ARMED: aws.deadline_role_arn is not set; if this machine sleeps or \
             cloudnap stops, resources keep running until it is back (`cloudnap aws-setup` \
             makes the role and sets it)"
        ),
        (Some(role), true) => match cloud.list_schedules(region, None, "").await {
            Ok(_) => println!(
                "deadline:  on, {:?} after the idle timeout, run as {role}",
                aws.deadline_margin
            ),
            Err(e) => println!("deadline:  NOT ARMED: EventBridge Scheduler in {region}: {e}"),
        },
    }
    match cloud.whoami(region, None).await {
        Ok(id) => {
            println!("credentials: account {} ({})", id.account, id.arn);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("credentials: FAILED: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// `cloudnap credentials`: runs the dialog binary for this config dir.
pub(crate) fn credentials(paths: &Paths) -> Result<ExitCode> {
    let status = dialog_command(&paths.settings)?
        .status()
        .map_err(|e| anyhow::anyhow!("cannot start {DIALOG_BIN}: {e}"))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
