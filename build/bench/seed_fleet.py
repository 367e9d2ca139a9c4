"""Creates N resources across 3 regions on a moto server, a mixed fleet:
mostly EC2, plus ECS services (half of them under an Application Auto
Scaling target), EKS nodegroups, Auto Scaling groups and RDS instances, and
writes a config dir listing them.

Usage: seed_fleet.py ENDPOINT_URL CONFIG_DIR [N=200] [NAME=bench]
(NAME prefixes every name, so that fleets of several runs share one moto.)
"""
import json
import pathlib
import sys

import boto3

endpoint, config_dir = sys.argv[1], pathlib.Path(sys.argv[2])
total = int(sys.argv[3]) if len(sys.argv) > 3 else 200
name = sys.argv[4] if len(sys.argv) > 4 else "bench"
kw = dict(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
regions = ["us-east-2", "eu-north-1", "ap-northeast-1"]
ecs_per_region, eks_per_region, asg_per_region, rds_per_region = 10, 3, 3, 2

ec2, ecs, eks, asg, rds = [], [], [], [], []
per_region = [total // 3 + (1 if i < total % 3 else 0) for i in range(3)]
for region, n in zip(regions, per_region):
    n_ec2 = n - ecs_per_region - eks_per_region - asg_per_region - rds_per_region
    out = boto3.client("ec2", region_name=region, **kw).run_instances(
        ImageId="ami-12345678", InstanceType="t3.micro", MinCount=n_ec2, MaxCount=n_ec2)
    ec2 += [(i["InstanceId"], region) for i in out["Instances"]]
    client = boto3.client("ecs", region_name=region, **kw)
    client.create_cluster(clusterName=name)
    client.register_task_definition(family="app", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 128}])
    for s in range(ecs_per_region):
        client.create_service(cluster=name, serviceName=f"{name}-svc{s}", taskDefinition="app", desiredCount=1 + s % 3)
        ecs.append((f"{name}-svc{s}", region))
        if s % 2 == 0:
            boto3.client("application-autoscaling", region_name=region, **kw).register_scalable_target(
                ServiceNamespace="ecs", ScalableDimension="ecs:service:DesiredCount",
                ResourceId=f"service/{name}/{name}-svc{s}", MinCapacity=1, MaxCapacity=6)
    client = boto3.client("eks", region_name=region, **kw)
    client.create_cluster(name=name, roleArn="arn:aws:iam::123456789012:role/eks",
                          resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    for g in range(eks_per_region):
        client.create_nodegroup(clusterName=name, nodegroupName=f"{name}-ng{g}", nodeRole="arn:aws:iam::123456789012:role/n",
                                subnets=["subnet-1"], scalingConfig={"minSize": 1, "desiredSize": 2, "maxSize": 3})
        eks.append((f"{name}-ng{g}", region))
    template = boto3.client("ec2", region_name=region, **kw).create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.micro"})
    client = boto3.client("autoscaling", region_name=region, **kw)
    for g in range(asg_per_region):
        client.create_auto_scaling_group(
            AutoScalingGroupName=f"{name}-asg{g}", MinSize=1, DesiredCapacity=1, MaxSize=3,
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]},
            AvailabilityZones=[f"{region}a"])
        asg.append((f"{name}-asg{g}", region))
    client = boto3.client("rds", region_name=region, **kw)
    for d in range(rds_per_region):
        client.create_db_instance(
            DBInstanceIdentifier=f"{name}-db{d}", Engine="postgres", DBInstanceClass="db.t3.micro",
            AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password123")
        rds.append((f"{name}-db{d}", region))

config_dir.mkdir(parents=True, exist_ok=True)
(config_dir / "settings.json").write_text(json.dumps({
    "aws": {"regions": regions, "endpoint_url": endpoint},
    "udp_server": {"port": 0},
    "desktop": {"tray": False, "credentials_dialog": False},
}, indent=2) + "\n")
lines = ["ec2_instances:"]
for i, r in ec2:
    lines += [f"  - instance_id: {i}", f"    region: {r}"]
lines += ["ecs_services:"]
for s, r in ecs:
    lines += [f"  - cluster_name: {name}", f"    service_name: {s}", f"    region: {r}"]
lines += ["eks_nodegroups:"]
for g, r in eks:
    lines += [f"  - cluster_name: {name}", f"    nodegroup_name: {g}", f"    region: {r}"]
lines += ["autoscaling_groups:"]
for g, r in asg:
    lines += [f"  - group_name: {g}", f"    region: {r}"]
lines += ["rds_instances:"]
for d, r in rds:
    lines += [f"  - db_instance_identifier: {d}", f"    region: {r}"]
(config_dir / "services.yaml").write_text("\n".join(lines) + "\n")
print(f"{len(ec2)} EC2 + {len(ecs)} ECS + {len(eks)} EKS + {len(asg)} ASG + {len(rds)} RDS"
      f" in {len(regions)} regions -> {config_dir}")
