//! What runs: the cluster and its Service Connect namespace, then per
//! service a log group, a task definition carrying its config as
//! `CONFIG_JSON`, and an ECS service; the collector every instance exports
//! to; and the poker that drives the ecosystem's load.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{
    super::start_order, DEPLOY_TIME_ALLOWANCE, EcsOptions, MAX_TASK_DEFINITION_BYTES, Template,
    attribute, logical_id, network, reference, sub, when,
};
use crate::ecosystem::{CONTAINER_PORT, Ecosystem, Peer, Service};

/// The collector's name: its ECS service and its Service Connect alias.
pub(super) const COLLECTOR: &str = "otel-collector";

/// The poker's ECS service.
const POKER: &str = "poker";

/// The port the collector takes OTLP/gRPC on.
const OTLP_PORT: u16 = 4317;

/// The port mapping every Thespian container names for Service Connect.
const PORT_NAME: &str = "grpc";

/// Refuses an ecosystem whose names the template cannot tell apart: a
/// service named like the collector or the poker, or two services whose
/// logical IDs (`orders-v2` is `OrdersV2`) would be the same.
pub(super) fn check_names(ecosystem: &Ecosystem) -> Result<(), crate::Error> {
    let mut ids = BTreeMap::new();
    for own in [COLLECTOR, POKER] {
        ids.insert(logical_id(own), format!("the rendering's own `{own}`"));
    }
    for service in &ecosystem.services {
        let id = logical_id(&service.name);
        if let Some(other) = ids.insert(id.clone(), format!("service `{}`", service.name)) {
            return Err(format!(
                "{}: service `{}` and {other} would share the CloudFormation name `{id}`; \
                 rename the service",
                ecosystem.origin.display(),
                service.name
            )
            .into());
        }
    }
    Ok(())
}

/// Adds the parameters and resources that run the ecosystem.
pub(super) fn add(
    template: &mut Template,
    ecosystem: &Ecosystem,
    options: &EcsOptions,
) -> Result<(), crate::Error> {
    parameters(template, options);
    template.resource(
        "Namespace",
        json!({"Type": "AWS::ServiceDiscovery::HttpNamespace", "Properties": {
            "Name": reference("AWS::StackName"),
            "Description": format!("Service Connect names of the Thespian ecosystem `{}`", ecosystem.name),
        }}),
    );
    template.resource(
        "Cluster",
        json!({"Type": "AWS::ECS::Cluster", "Properties": {
            "ServiceConnectDefaults": {"Namespace": attribute("Namespace", "Arn")},
        }}),
    );
    template.resource(
        "ExecutionRole",
        json!({"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }]},
            "ManagedPolicyArns": [sub(
                "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            )],
        }}),
    );
    super::collector::add(template);
    let depends = dependencies(ecosystem);
    for service in &ecosystem.services {
        add_service(template, ecosystem, service, &depends[&service.name])?;
    }
    if !ecosystem.load.is_empty() {
        add_poker(template, ecosystem);
    }
    Ok(())
}

fn parameters(template: &mut Template, options: &EcsOptions) {
    let mut image = json!({
        "Type": "String",
        "Description": "The Thespian image every service runs, built from the repository's Dockerfile \
                        and pushed where ECS can pull it (ECR, for one)",
        "MinLength": 1,
    });
    if let Some(default) = &options.image {
        image["Default"] = json!(default);
    }
    template.parameter("ThespianImage", image);
    template.parameter(
        "TaskCpu",
        json!({"Type": "String", "Default": "256",
               "AllowedValues": ["256", "512", "1024", "2048", "4096"],
               "Description": "CPU units of each Thespian task (1024 = 1 vCPU); Fargate pairs each with \
                               certain TaskMemory sizes"}),
    );
    template.parameter(
        "TaskMemory",
        json!({"Type": "String", "Default": "512",
               "AllowedValues": ["512", "1024", "2048", "3072", "4096", "8192"],
               "Description": "Memory of each Thespian task in MiB, its Service Connect proxy included"}),
    );
    template.parameter(
        "CpuArchitecture",
        json!({"Type": "String", "Default": "X86_64", "AllowedValues": ["X86_64", "ARM64"],
               "Description": "The CPU the tasks run on; the images must be built for it"}),
    );
    template.parameter(
        "LogRetentionDays",
        json!({"Type": "Number", "Default": 7,
               "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 180, 365],
               "Description": "How long CloudWatch keeps the services' logs"}),
    );
    template.groups.push((
        "Thespian",
        vec![
            "ThespianImage",
            "TaskCpu",
            "TaskMemory",
            "CpuArchitecture",
            "LogRetentionDays",
        ],
    ));
}

/// For each service, the ECS services it must start after: Service Connect
/// gives a task only the endpoints that existed when it started, so the
/// collector and a service's peers come first; peers on a call circle with
/// it cannot, and start together (see `start_order`).
fn dependencies(ecosystem: &Ecosystem) -> BTreeMap<String, Vec<String>> {
    start_order(ecosystem)
        .into_iter()
        .map(|(name, waits)| {
            let depends = std::iter::once(COLLECTOR)
                .chain(waits.iter().map(String::as_str))
                .map(|service| format!("{}Service", logical_id(service)))
                .collect();
            (name, depends)
        })
        .collect()
}

/// A service's log group, task definition and ECS service.
fn add_service(
    template: &mut Template,
    ecosystem: &Ecosystem,
    service: &Service,
    depends: &[String],
) -> Result<(), crate::Error> {
    let id = logical_id(&service.name);
    let name = service.name.as_str();
    let config = ecosystem.config_inlined(service, &|peer| Peer::container(&peer.name));
    let mut environment = super::super::environment(
        service,
        vec![
            ("PORT", CONTAINER_PORT.to_string()),
            ("SERVICE_NAME", name.to_owned()),
            (
                "OTEL_BACKEND_ADDRESS",
                format!("http://{COLLECTOR}:{OTLP_PORT}"),
            ),
        ],
    );
    environment.push(("CONFIG_JSON".to_owned(), config.to_string()));
    let container = json!({
        "Name": name,
        "Image": reference("ThespianImage"),
        "Essential": true,
        "ReadonlyRootFilesystem": true,
        "PortMappings": [{
            "Name": PORT_NAME, "ContainerPort": CONTAINER_PORT, "Protocol": "tcp", "AppProtocol": "grpc",
        }],
        "Environment": environment.into_iter()
            .map(|(name, value)| json!({"Name": name, "Value": value}))
            .collect::<Vec<_>>(),
        "HealthCheck": {
            "Command": ["CMD", "/usr/local/bin/thespian", "health"],
            "Interval": 10, "Timeout": 5, "Retries": 3, "StartPeriod": 10,
        },
        "LogConfiguration": awslogs(&id, "thespian"),
    });
    let task = task_definition(name, "TaskCpu", "TaskMemory", vec![container]);
    let weight = task["Properties"].to_string().len() + DEPLOY_TIME_ALLOWANCE;
    if weight > MAX_TASK_DEFINITION_BYTES {
        return Err(format!(
            "{}: service `{name}` would need a task definition of about {weight} bytes with its config \
             and scripts inlined as CONFIG_JSON, and ECS takes at most {MAX_TASK_DEFINITION_BYTES} \
             (64 KiB): shorten its scripts or split its methods across services",
            ecosystem.origin.display()
        )
        .into());
    }
    log_group(template, &id, name);
    template.resource(&format!("{id}TaskDefinition"), task);
    let public = format!("{id}IsPublic");
    template.condition(
        &public,
        json!({"Fn::And": [{"Fn::Equals": [reference("PublicService"), name]}, {"Condition": "HasPublicService"}]}),
    );
    let mut depends = depends.to_vec();
    depends.push(network::LISTENER_READY.to_owned());
    let mut ecs_service = ecs_service(name, &id, service.replicas, &depends);
    let properties = &mut ecs_service["Properties"];
    properties["ServiceConnectConfiguration"] = json!({
        "Enabled": true,
        "Namespace": attribute("Namespace", "Arn"),
        "Services": [{
            "PortName": PORT_NAME,
            "DiscoveryName": name,
            "ClientAliases": [{"Port": CONTAINER_PORT, "DnsName": name}],
        }],
        "LogConfiguration": awslogs(&id, "service-connect"),
    });
    properties["LoadBalancers"] = when(
        &public,
        json!([{"ContainerName": name, "ContainerPort": CONTAINER_PORT,
                "TargetGroupArn": reference(network::TARGET_GROUP)}]),
        reference("AWS::NoValue"),
    );
    properties["HealthCheckGracePeriodSeconds"] =
        when(&public, json!(30), reference("AWS::NoValue"));
    template.resource(&format!("{id}Service"), ecs_service);
    Ok(())
}

/// The poker: one container per load of the ecosystem, each calling its
/// service's method at its rate, for a day at a time; ECS starts the next.
fn add_poker(template: &mut Template, ecosystem: &Ecosystem) {
    let id = logical_id(POKER);
    let mut names = BTreeSet::new();
    let containers: Vec<Value> = ecosystem
        .load
        .iter()
        .map(|load| {
            let method = load.method.as_str();
            let base = format!("{}-{}", load.service, method.to_ascii_lowercase());
            let mut name = base.clone();
            for n in 2.. {
                if names.insert(name.clone()) {
                    break;
                }
                name = format!("{base}-{n}");
            }
            json!({
                "Name": name,
                "Image": reference("ThespianImage"),
                "Essential": true,
                "ReadonlyRootFilesystem": true,
                "Command": super::super::poke_args(load),
                "LogConfiguration": awslogs(&id, "poke"),
            })
        })
        .collect();
    log_group(template, &id, POKER);
    template.resource(
        &format!("{id}TaskDefinition"),
        task_definition(POKER, "TaskCpu", "TaskMemory", containers),
    );
    let targets: BTreeSet<&str> = ecosystem.load.iter().map(|l| l.service.as_str()).collect();
    let depends: Vec<String> = targets
        .into_iter()
        .map(|target| format!("{}Service", logical_id(target)))
        .collect();
    let mut ecs_service = ecs_service(POKER, &id, 1, &depends);
    // A client only: it calls others by name and is called by none.
    ecs_service["Properties"]["ServiceConnectConfiguration"] = json!({
        "Enabled": true,
        "Namespace": attribute("Namespace", "Arn"),
        "LogConfiguration": awslogs(&id, "service-connect"),
    });
    template.resource(&format!("{id}Service"), ecs_service);
}

/// A log group for one ECS service, kept `LogRetentionDays`.
pub(super) fn log_group(template: &mut Template, id: &str, name: &str) {
    template.resource(
        &format!("{id}LogGroup"),
        json!({"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": sub(&format!("/ecs/${{AWS::StackName}}/{name}")),
            "RetentionInDays": reference("LogRetentionDays"),
        }}),
    );
}

/// Container logs into the log group of `id`, under `prefix`.
pub(super) fn awslogs(id: &str, prefix: &str) -> Value {
    json!({"LogDriver": "awslogs", "Options": {
        "awslogs-group": reference(&format!("{id}LogGroup")),
        "awslogs-region": reference("AWS::Region"),
        "awslogs-stream-prefix": prefix,
    }})
}

/// A Fargate task definition of `containers`, sized by the parameters or
/// values given.
pub(super) fn task_definition(
    name: &str,
    cpu: &str,
    memory: &str,
    containers: Vec<Value>,
) -> Value {
    let size = |value: &str| match value.parse::<u32>() {
        Ok(_) => json!(value),
        Err(_) => reference(value),
    };
    json!({"Type": "AWS::ECS::TaskDefinition", "Properties": {
        "Family": sub(&format!("${{AWS::StackName}}-{name}")),
        "RequiresCompatibilities": ["FARGATE"],
        "NetworkMode": "awsvpc",
        "Cpu": size(cpu),
        "Memory": size(memory),
        "RuntimePlatform": {"OperatingSystemFamily": "LINUX", "CpuArchitecture": reference("CpuArchitecture")},
        "ExecutionRoleArn": attribute("ExecutionRole", "Arn"),
        "ContainerDefinitions": containers,
    }})
}

/// An ECS service on Fargate running `desired` tasks of `id`'s task
/// definition, started after `depends`.
pub(super) fn ecs_service(name: &str, id: &str, desired: u16, depends: &[String]) -> Value {
    let properties = json!({
        "ServiceName": name,
        "Cluster": reference("Cluster"),
        "TaskDefinition": reference(&format!("{id}TaskDefinition")),
        "LaunchType": "FARGATE",
        "DesiredCount": desired,
        "DeploymentConfiguration": {
            "MinimumHealthyPercent": 100,
            "MaximumPercent": 200,
            "DeploymentCircuitBreaker": {"Enable": true, "Rollback": true},
        },
        "NetworkConfiguration": {"AwsvpcConfiguration": network::awsvpc()},
    });
    if depends.is_empty() {
        json!({"Type": "AWS::ECS::Service", "Properties": properties})
    } else {
        json!({"Type": "AWS::ECS::Service", "DependsOn": depends, "Properties": properties})
    }
}
