"""Creates N resources across 3 regions on a moto server (mostly EC2, plus
ECS services and EKS nodegroups) and writes a config dir listing them.

Usage: seed_fleet.py ENDPOINT_URL CONFIG_DIR [N=200]
"""
import json
import pathlib
import sys

import boto3

endpoint, config_dir = sys.argv[1], pathlib.Path(sys.argv[2])
total = int(sys.argv[3]) if len(sys.argv) > 3 else 200
kw = dict(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
regions = ["us-east-2", "eu-north-1", "ap-northeast-1"]
ecs_per_region, eks_per_region = 10, 3

ec2, ecs, eks = [], [], []
per_region = [total // 3 + (1 if i < total % 3 else 0) for i in range(3)]
for region, n in zip(regions, per_region):
    n_ec2 = n - ecs_per_region - eks_per_region
    out = boto3.client("ec2", region_name=region, **kw).run_instances(
        ImageId="ami-12345678", InstanceType="t3.micro", MinCount=n_ec2, MaxCount=n_ec2)
    ec2 += [(i["InstanceId"], region) for i in out["Instances"]]
    client = boto3.client("ecs", region_name=region, **kw)
    client.create_cluster(clusterName="bench")
    client.register_task_definition(family="app", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 128}])
    for s in range(ecs_per_region):
        client.create_service(cluster="bench", serviceName=f"svc{s}", taskDefinition="app", desiredCount=1 + s % 3)
        ecs.append((f"svc{s}", region))
    client = boto3.client("eks", region_name=region, **kw)
    client.create_cluster(name="bench", roleArn="arn:aws:iam::123456789012:role/eks",
                          resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    for g in range(eks_per_region):
        client.create_nodegroup(clusterName="bench", nodegroupName=f"ng{g}", nodeRole="arn:aws:iam::123456789012:role/n",
                                subnets=["subnet-1"], scalingConfig={"minSize": 1, "desiredSize": 2, "maxSize": 3})
        eks.append((f"ng{g}", region))

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
    lines += ["  - cluster_name: bench", f"    service_name: {s}", f"    region: {r}"]
lines += ["eks_nodegroups:"]
for g, r in eks:
    lines += ["  - cluster_name: bench", f"    nodegroup_name: {g}", f"    region: {r}"]
(config_dir / "services.yaml").write_text("\n".join(lines) + "\n")
print(f"{len(ec2)} EC2 + {len(ecs)} ECS + {len(eks)} EKS in {len(regions)} regions -> {config_dir}")
