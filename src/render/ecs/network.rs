//! Where the tasks run: an existing VPC and subnets named by parameters,
//! or, when `VpcId` is empty, a VPC of its own with public and private
//! subnets in two zones (private ones behind a NAT gateway when tasks get
//! no public IPs); the security groups; and, when `PublicService` names a
//! service, a public Application Load Balancer taking gRPC over HTTPS.

use serde_json::{Value, json};

use super::{Template, attribute, reference, sub, when};
use crate::ecosystem::{CONTAINER_PORT, Ecosystem};

/// The public service's target group.
pub(super) const TARGET_GROUP: &str = "TargetGroup";

/// A handle every service starts after, which waits for the listener when
/// there is one: ECS refuses a target group no load balancer uses yet,
/// and `DependsOn` cannot name a resource that may not exist.
pub(super) const LISTENER_READY: &str = "ListenerReady";

/// The address block of a VPC the stack makes, and its four subnets'.
const VPC_CIDR: &str = "10.0.0.0/16";
const SUBNETS: [(&str, &str, u32); 4] = [
    ("PublicSubnet1", "10.0.0.0/20", 0),
    ("PublicSubnet2", "10.0.16.0/20", 1),
    ("PrivateSubnet1", "10.0.128.0/20", 0),
    ("PrivateSubnet2", "10.0.144.0/20", 1),
];

/// Adds the network's parameters, rules, conditions, resources and outputs.
pub(super) fn add(template: &mut Template, ecosystem: &Ecosystem) {
    parameters(template, ecosystem);
    let not_empty = |name: &str| json!({"Fn::Not": [{"Fn::Equals": [reference(name), ""]}]});
    let no_blank = |name: &str| json!({"Fn::Not": [{"Fn::Contains": [reference(name), ""]}]});
    template.rules.insert(
        "SubnetsOfTheGivenVpc".into(),
        json!({"RuleCondition": not_empty("VpcId"), "Assertions": [{
            "Assert": no_blank("TaskSubnetIds"),
            "AssertDescription": "With a VpcId, TaskSubnetIds names the subnets the tasks run in",
        }]}),
    );
    template.rules.insert(
        "TaskSubnetsNeedTheirVpc".into(),
        json!({"RuleCondition": no_blank("TaskSubnetIds"), "Assertions": [{
            "Assert": not_empty("VpcId"),
            "AssertDescription": "TaskSubnetIds are subnets of the given VpcId",
        }]}),
    );
    template.rules.insert(
        "CertificateForThePublicService".into(),
        json!({"RuleCondition": not_empty("PublicService"), "Assertions": [{
            "Assert": not_empty("CertificateArn"),
            "AssertDescription": "A PublicService needs a CertificateArn for its HTTPS listener",
        }]}),
    );
    template.rules.insert(
        "LoadBalancerSubnetsNeedTheirVpc".into(),
        json!({"RuleCondition": {"Fn::Not": [{"Fn::Contains": [reference("LoadBalancerSubnetIds"), ""]}]},
               "Assertions": [{
            "Assert": not_empty("VpcId"),
            "AssertDescription": "LoadBalancerSubnetIds are subnets of the given VpcId",
        }]}),
    );
    // Each parameter that may be empty is only used under a condition on
    // its own value, which is also what lets cfn-lint see that it is set.
    let listed = |name: &str| json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", reference(name)]}, ""]}]});
    template.condition(
        "UseGivenVpc",
        json!({"Fn::And": [not_empty("VpcId"), listed("TaskSubnetIds")]}),
    );
    template.condition(
        "CreateVpc",
        json!({"Fn::Not": [{"Condition": "UseGivenVpc"}]}),
    );
    template.condition("HasLoadBalancerSubnets", listed("LoadBalancerSubnetIds"));
    template.condition(
        "TasksInPublicSubnets",
        json!({"Fn::Equals": [reference("PublicIp"), "ENABLED"]}),
    );
    template.condition(
        "CreateNat",
        json!({"Fn::And": [{"Condition": "CreateVpc"}, {"Fn::Not": [{"Condition": "TasksInPublicSubnets"}]}]}),
    );
    template.condition(
        "HasPublicService",
        json!({"Fn::And": [not_empty("PublicService"), not_empty("CertificateArn")]}),
    );
    vpc(template);
    security_groups(template);
    load_balancer(template);
    template.output(
        "ClusterName",
        json!({"Description": "The ECS cluster", "Value": reference("Cluster")}),
    );
    template.output(
        "NamespaceArn",
        json!({"Description": "The Cloud Map namespace of Service Connect",
               "Value": attribute("Namespace", "Arn")}),
    );
    template.output(
        "PublicEndpoint",
        json!({"Condition": "HasPublicService",
               "Description": "The public service, for grpcurl or `thespian poke` (port 443)",
               "Value": sub("https://${LoadBalancer.DNSName}")}),
    );
}

fn parameters(template: &mut Template, ecosystem: &Ecosystem) {
    template.parameter(
        "VpcId",
        json!({"Type": "String", "Default": "",
               "Description": "An existing VPC to run in; empty makes one with public and private subnets"}),
    );
    template.parameter(
        "TaskSubnetIds",
        json!({"Type": "CommaDelimitedList", "Default": "",
               "Description": "With a VpcId: the subnets the tasks run in"}),
    );
    template.parameter(
        "LoadBalancerSubnetIds",
        json!({"Type": "CommaDelimitedList", "Default": "",
               "Description": "With a VpcId and a PublicService: public subnets in two or more zones for the \
                               load balancer, when the tasks' subnets are not public"}),
    );
    template.parameter(
        "PublicIp",
        json!({"Type": "String", "Default": "ENABLED", "AllowedValues": ["ENABLED", "DISABLED"],
               "Description": "Whether tasks get public IPs to pull images and reach the OTLP endpoint. \
                               In a VPC the stack makes, ENABLED runs them in its public subnets and \
                               DISABLED in its private ones behind a NAT gateway"}),
    );
    let mut services = vec![String::new()];
    services.extend(ecosystem.services.iter().map(|s| s.name.clone()));
    template.parameter(
        "PublicService",
        json!({"Type": "String", "Default": "", "AllowedValues": services,
               "Description": "A service to put behind a public Application Load Balancer \
                               (gRPC over HTTPS on port 443); empty for none"}),
    );
    template.parameter(
        "CertificateArn",
        json!({"Type": "String", "Default": "",
               "Description": "The ACM certificate of the public service's HTTPS listener; the load balancer \
                               is made only with both"}),
    );
    template
        .groups
        .push(("Network", vec!["VpcId", "TaskSubnetIds", "PublicIp"]));
    template.groups.push((
        "Public entry",
        vec!["PublicService", "CertificateArn", "LoadBalancerSubnetIds"],
    ));
}

/// The VPC tasks and the load balancer are in.
fn vpc_id() -> Value {
    when("UseGivenVpc", reference("VpcId"), reference("Vpc"))
}

/// Where each service's tasks run, and with which address and group.
pub(super) fn awsvpc() -> Value {
    json!({
        "AssignPublicIp": reference("PublicIp"),
        "SecurityGroups": [reference("TaskSecurityGroup")],
        "Subnets": when(
            "UseGivenVpc",
            reference("TaskSubnetIds"),
            when(
                "TasksInPublicSubnets",
                json!([reference("PublicSubnet1"), reference("PublicSubnet2")]),
                json!([reference("PrivateSubnet1"), reference("PrivateSubnet2")]),
            ),
        ),
    })
}

/// The VPC the stack makes when given none.
fn vpc(template: &mut Template) {
    let made = |kind: &str, properties: Value| json!({"Type": kind, "Condition": "CreateVpc", "Properties": properties});
    let name = |suffix: &str| json!([{"Key": "Name", "Value": sub(&format!("${{AWS::StackName}}-{suffix}"))}]);
    template.resource(
        "Vpc",
        made(
            "AWS::EC2::VPC",
            json!({"CidrBlock": VPC_CIDR, "EnableDnsSupport": true,
                                      "EnableDnsHostnames": true, "Tags": name("vpc")}),
        ),
    );
    template.resource(
        "InternetGateway",
        made("AWS::EC2::InternetGateway", json!({"Tags": name("igw")})),
    );
    template.resource(
        "GatewayAttachment",
        made(
            "AWS::EC2::VPCGatewayAttachment",
            json!({"VpcId": reference("Vpc"), "InternetGatewayId": reference("InternetGateway")}),
        ),
    );
    for (subnet, cidr, zone) in SUBNETS {
        template.resource(
            subnet,
            made(
                "AWS::EC2::Subnet",
                json!({
                    "VpcId": reference("Vpc"),
                    "CidrBlock": cidr,
                    "AvailabilityZone": {"Fn::Select": [zone, {"Fn::GetAZs": ""}]},
                    "Tags": name(&subnet.to_ascii_lowercase()),
                }),
            ),
        );
    }
    for side in ["Public", "Private"] {
        template.resource(
            &format!("{side}RouteTable"),
            made(
                "AWS::EC2::RouteTable",
                json!({"VpcId": reference("Vpc"),
                                                 "Tags": name(&side.to_ascii_lowercase())}),
            ),
        );
        for n in 1..=2 {
            template.resource(
                &format!("{side}Subnet{n}Routes"),
                made(
                    "AWS::EC2::SubnetRouteTableAssociation",
                    json!({
                        "SubnetId": reference(&format!("{side}Subnet{n}")),
                        "RouteTableId": reference(&format!("{side}RouteTable")),
                    }),
                ),
            );
        }
    }
    let mut public_route = made(
        "AWS::EC2::Route",
        json!({
            "RouteTableId": reference("PublicRouteTable"),
            "DestinationCidrBlock": "0.0.0.0/0",
            "GatewayId": reference("InternetGateway"),
        }),
    );
    public_route["DependsOn"] = json!("GatewayAttachment");
    template.resource("PublicRoute", public_route);
    let nat = |kind: &str, properties: Value| json!({"Type": kind, "Condition": "CreateNat", "Properties": properties});
    let mut address = nat("AWS::EC2::EIP", json!({"Domain": "vpc"}));
    address["DependsOn"] = json!("GatewayAttachment");
    template.resource("NatAddress", address);
    template.resource(
        "NatGateway",
        nat(
            "AWS::EC2::NatGateway",
            json!({
                "AllocationId": attribute("NatAddress", "AllocationId"),
                "SubnetId": reference("PublicSubnet1"),
                "Tags": name("nat"),
            }),
        ),
    );
    template.resource(
        "PrivateRoute",
        nat(
            "AWS::EC2::Route",
            json!({
                "RouteTableId": reference("PrivateRouteTable"),
                "DestinationCidrBlock": "0.0.0.0/0",
                "NatGatewayId": reference("NatGateway"),
            }),
        ),
    );
}

/// Tasks take gRPC from each other (through their Service Connect proxies)
/// and from the load balancer, and OTLP at the collector.
fn security_groups(template: &mut Template) {
    template.resource(
        "TaskSecurityGroup",
        json!({"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "Thespian tasks and their collector",
            "VpcId": vpc_id(),
        }}),
    );
    let ingress = |port: u16, from: &str, description: &str| {
        json!({"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": reference("TaskSecurityGroup"),
            "SourceSecurityGroupId": reference(from),
            "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "Description": description,
        }})
    };
    template.resource(
        "GrpcFromTasks",
        ingress(CONTAINER_PORT, "TaskSecurityGroup", "gRPC between services"),
    );
    template.resource(
        "OtlpFromTasks",
        ingress(
            4317,
            "TaskSecurityGroup",
            "OTLP from services to the collector",
        ),
    );
    let mut from_balancer = ingress(
        CONTAINER_PORT,
        "LoadBalancerSecurityGroup",
        "gRPC from the load balancer",
    );
    from_balancer["Condition"] = json!("HasPublicService");
    template.resource("GrpcFromLoadBalancer", from_balancer);
}

/// The public entry: an internet-facing ALB whose HTTPS listener forwards
/// gRPC to the public service's tasks, health-checked with the standard
/// gRPC health service.
fn load_balancer(template: &mut Template) {
    let public = |kind: &str, properties: Value| json!({"Type": kind, "Condition": "HasPublicService", "Properties": properties});
    template.resource(
        "LoadBalancerSecurityGroup",
        public("AWS::EC2::SecurityGroup", json!({
            "GroupDescription": "HTTPS from anywhere to the load balancer of the public service",
            "VpcId": vpc_id(),
            "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                      "CidrIp": "0.0.0.0/0", "Description": "HTTPS"}],
        })),
    );
    template.resource(
        "LoadBalancer",
        public(
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            json!({
                "Type": "application",
                "Scheme": "internet-facing",
                "SecurityGroups": [reference("LoadBalancerSecurityGroup")],
                // In a given VPC, the tasks' subnets unless others are named.
                "Subnets": when(
                    "CreateVpc",
                    json!([reference("PublicSubnet1"), reference("PublicSubnet2")]),
                    when(
                        "HasLoadBalancerSubnets",
                        reference("LoadBalancerSubnetIds"),
                        reference("TaskSubnetIds"),
                    ),
                ),
            }),
        ),
    );
    template.resource(
        TARGET_GROUP,
        public("AWS::ElasticLoadBalancingV2::TargetGroup", json!({
            "TargetType": "ip",
            "Protocol": "HTTP",
            "ProtocolVersion": "GRPC",
            "Port": CONTAINER_PORT,
            "VpcId": vpc_id(),
            "HealthCheckProtocol": "HTTP",
            "HealthCheckPath": "/grpc.health.v1.Health/Check",
            "Matcher": {"GrpcCode": "0"},
            "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
        })),
    );
    template.resource(
        "Listener",
        public(
            "AWS::ElasticLoadBalancingV2::Listener",
            json!({
                "LoadBalancerArn": reference("LoadBalancer"),
                "Port": 443,
                "Protocol": "HTTPS",
                "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                "Certificates": [{"CertificateArn": reference("CertificateArn")}],
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": reference(TARGET_GROUP)}],
            }),
        ),
    );
    template.resource(
        LISTENER_READY,
        json!({"Type": "AWS::CloudFormation::WaitConditionHandle", "Metadata": {
            "Listener": when("HasPublicService", reference("Listener"), json!("")),
        }}),
    );
}
