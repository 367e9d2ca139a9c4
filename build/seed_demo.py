"""Creates sample resources on a moto server and writes a demo config dir.

Usage: seed_demo.py ENDPOINT_URL CONFIG_DIR TIMEOUT_MINUTES WARNING_MINUTES UDP_PORT
"""
import json
import pathlib
import sys

import boto3

endpoint, config_dir = sys.argv[1], pathlib.Path(sys.argv[2])
timeout, warning, port = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
kw = dict(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
regions = ["us-east-1", "eu-west-1"]

ec2 = []
for region in regions:
    client = boto3.client("ec2", region_name=region, **kw)
    out = client.run_instances(ImageId="ami-12345678", InstanceType="t3.micro", MinCount=1, MaxCount=1,
                               TagSpecifications=[{"ResourceType": "instance",
                                                   "Tags": [{"Key": "Name", "Value": f"demo-{region}"}]}])
    ec2.append((out["Instances"][0]["InstanceId"], region))

ecs = boto3.client("ecs", region_name="us-east-1", **kw)
ecs.create_cluster(clusterName="demo")
ecs.register_task_definition(family="api", containerDefinitions=[{"name": "api", "image": "nginx", "memory": 128}])
ecs.create_service(cluster="demo", serviceName="api", taskDefinition="api", desiredCount=2)

eks = boto3.client("eks", region_name="us-east-1", **kw)
eks.create_cluster(name="demo", roleArn="arn:aws:iam::123456789012:role/eks",
                   resourcesVpcConfig={"subnetIds": ["subnet-1"]})
eks.create_nodegroup(clusterName="demo", nodegroupName="workers", nodeRole="arn:aws:iam::123456789012:role/node",
                     subnets=["subnet-1"], scalingConfig={"minSize": 1, "desiredSize": 2, "maxSize": 3})

config_dir.mkdir(parents=True, exist_ok=True)
(config_dir / "settings.json").write_text(json.dumps({
    "activity_monitor": {"inactivity_timeout_minutes": timeout, "warning_minutes": warning},
    "aws": {"regions": regions, "endpoint_url": endpoint},
    "udp_server": {"port": port},
    # moto 5.2.5 cannot answer the SDK's CloudWatch protocol (RPC v2 CBOR), so
    # the busy check would only add a "busy check skipped" note to each row.
    "busy": {"enabled": False},
}, indent=2) + "\n")
lines = ["# demo resources on the local moto server", "ec2_instances:"]
for instance_id, region in ec2:
    lines += [f"  - instance_id: {instance_id}", f"    region: {region}", f"    description: demo box in {region}"]
lines += ["ecs_services:", "  - cluster_name: demo", "    service_name: api", "    region: us-east-1",
          "    description: API at 2 tasks",
          "eks_nodegroups:", "  - cluster_name: demo", "    nodegroup_name: workers", "    region: us-east-1",
          "    description: nodegroup at 1/2/3"]
(config_dir / "services.yaml").write_text("\n".join(lines) + "\n")
print(f"demo config written to {config_dir}")
