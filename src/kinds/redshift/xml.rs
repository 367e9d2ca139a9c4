//! The DescribeClusters answer (Query protocol, XML) read with
//! aws-smithy-xml: each cluster's identifier, status, node type, node count
//! and tags, and the next page's marker.

use aws_smithy_xml::decode::{try_data, Document, ScopedDecoder, XmlDecodeError};

/// A cluster as DescribeClusters tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    pub identifier: String,
    pub status: String,
    pub node_type: String,
    pub nodes: u32,
    pub tags: Vec<(String, String)>,
}

/// One page of DescribeClusters: its clusters and the marker of the next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub clusters: Vec<Cluster>,
    pub marker: Option<String>,
}

/// Reads a DescribeClusters answer.
pub fn page(xml: &str) -> Result<Page, XmlDecodeError> {
    let mut doc = Document::new(xml);
    let mut root = doc.root_element()?;
    let mut page = Page::default();
    while let Some(mut result) = root.next_tag() {
        if !result.start_el().matches("DescribeClustersResult") {
            continue;
        }
        while let Some(mut tag) = result.next_tag() {
            if tag.start_el().matches("Clusters") {
                while let Some(mut c) = tag.next_tag() {
                    page.clusters.push(cluster(&mut c)?);
                }
            } else if tag.start_el().matches("Marker") {
                page.marker = Some(try_data(&mut tag)?.to_string()).filter(|m| !m.is_empty());
            }
        }
    }
    Ok(page)
}

/// One `<Cluster>`.
fn cluster(el: &mut ScopedDecoder) -> Result<Cluster, XmlDecodeError> {
    let mut c = Cluster::default();
    while let Some(mut tag) = el.next_tag() {
        let name = tag.start_el().local().to_string();
        match name.as_str() {
            "ClusterIdentifier" => c.identifier = try_data(&mut tag)?.into(),
            "ClusterStatus" => c.status = try_data(&mut tag)?.into(),
            "NodeType" => c.node_type = try_data(&mut tag)?.into(),
            "NumberOfNodes" => c.nodes = try_data(&mut tag)?.trim().parse().unwrap_or(0),
            "Tags" => {
                while let Some(mut t) = tag.next_tag() {
                    c.tags.push(pair(&mut t)?);
                }
            }
            _ => {}
        }
    }
    Ok(c)
}

/// One `<Tag><Key/><Value/></Tag>`.
fn pair(el: &mut ScopedDecoder) -> Result<(String, String), XmlDecodeError> {
    let (mut key, mut value) = (String::new(), String::new());
    while let Some(mut tag) = el.next_tag() {
        if tag.start_el().matches("Key") {
            key = try_data(&mut tag)?.into();
        } else if tag.start_el().matches("Value") {
            value = try_data(&mut tag)?.into();
        }
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_their_tags_and_the_marker_are_read() {
        let xml = r#"<?xml version="1.0"?>
<DescribeClustersResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">
  <DescribeClustersResult>
    <Clusters>
      <Cluster>
        <ClusterIdentifier>dw</ClusterIdentifier>
        <NodeType>ra3.xlplus</NodeType>
        <ClusterStatus>available</ClusterStatus>
        <Endpoint><Address>dw.x</Address><Port>5439</Port></Endpoint>
        <NumberOfNodes>2</NumberOfNodes>
        <Tags><Tag><Key>cloudnap:protect</Key><Value>a &amp; b</Value></Tag></Tags>
      </Cluster>
      <Cluster><ClusterIdentifier>p</ClusterIdentifier><ClusterStatus>paused</ClusterStatus><Tags/></Cluster>
    </Clusters>
    <Marker>next</Marker>
  </DescribeClustersResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</DescribeClustersResponse>"#;
        let read = page(xml).unwrap();
        assert_eq!(read.marker.as_deref(), Some("next"));
        assert_eq!(
            read.clusters[0],
            Cluster {
                identifier: "dw".into(),
                status: "available".into(),
                node_type: "ra3.xlplus".into(),
                nodes: 2,
                tags: vec![("cloudnap:protect".into(), "a & b".into())],
            }
        );
        assert_eq!(read.clusters[1].status, "paused");
        assert!(read.clusters[1].tags.is_empty());
        assert!(page("<nope").is_err() || page("<nope").unwrap().clusters.is_empty());
    }
}
