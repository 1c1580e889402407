//! Bake over a pool: which node builds each target. Targets linked by
//! `target:` contexts stay together on one node (the linked graph is a
//! frontend input of the dependent's build, which only that daemon holds);
//! each group goes where [`ConnectedPool::ranking`] sends its first target,
//! keyed by the target's context folder and name, so the next bake of the
//! same project sends it to the same node. A target asking for platforms
//! no single node builds is split per platform ([`crate::pool::split`]).
//! With the pool's shared cache,
//! every target imports and exports its own tag of that repository.

use std::collections::BTreeMap;

use super::plan::TargetPlan;
use super::run::{PlacedNode, Placement};
use crate::pool::{ConnectedPool, PoolError};

/// Chooses each target's nodes and adds the shared cache to its request.
pub(crate) fn place(pool: &ConnectedPool, plans: &mut [TargetPlan]) -> Result<Placement, PoolError> {
    // Groups of linked targets: each target's group is its first linked
    // target's (plans come in build order, a context target first).
    let mut group: BTreeMap<String, String> = BTreeMap::new();
    for plan in plans.iter() {
        let root = plan.links.iter().find_map(|(_, t)| group.get(t).cloned()).unwrap_or_else(|| plan.name.clone());
        // A target linking two groups joins them under the first.
        for (_, target) in &plan.links {
            if let Some(other) = group.get(target).cloned() {
                for value in group.values_mut() {
                    if *value == other {
                        *value = root.clone();
                    }
                }
            }
        }
        group.insert(plan.name.clone(), root);
    }
    let mut group_platforms: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for plan in plans.iter() {
        let list = group_platforms.entry(group[&plan.name].clone()).or_default();
        for platform in crate::pool::requested_platforms(&plan.request) {
            if !list.contains(&platform) {
                list.push(platform);
            }
        }
    }
    let keys: BTreeMap<String, String> =
        plans.iter().map(|p| (p.name.clone(), crate::pool::route_key(&p.request, &p.name))).collect();
    // Targets that use another's result or hand theirs on.
    let mut linked = std::collections::BTreeSet::new();
    for plan in plans.iter() {
        if !plan.links.is_empty() {
            linked.insert(plan.name.as_str());
        }
        linked.extend(plan.links.iter().map(|(_, t)| t.as_str()));
    }
    let mut rankings: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut split_parts: BTreeMap<String, Vec<crate::pool::split::Part>> = BTreeMap::new();
    for plan in plans.iter() {
        // A target no node can build whole goes per platform to the nodes
        // that build each; linked targets stay whole on one node.
        if linked.contains(plan.name.as_str()) {
            continue;
        }
        if let Some(parts) = pool.split(&plan.request, &plan.name)? {
            rankings.insert(plan.name.clone(), vec![parts[0].member]);
            split_parts.insert(plan.name.clone(), parts);
        }
    }
    for (root, platforms) in &group_platforms {
        if !rankings.contains_key(root) {
            rankings.insert(root.clone(), pool.ranking(&keys[root], platforms)?);
        }
    }
    // Only nodes that are up are ranked; number them among themselves.
    let mut nodes = Vec::new();
    let mut index_of = BTreeMap::new();
    for (i, member) in pool.members.iter().enumerate() {
        if let Some(connection) = member.connection() {
            index_of.insert(i, nodes.len());
            nodes.push(PlacedNode { name: Some(member.config.name.clone()), channel: connection.channel.clone() });
        }
    }
    let targets = plans
        .iter()
        .map(|p| (p.name.clone(), rankings[&group[&p.name]].iter().map(|i| index_of[i]).collect()))
        .collect();
    let splits = split_parts
        .into_iter()
        .map(|(name, parts)| (name, parts.into_iter().map(|p| (p.platform, index_of[&p.member])).collect()))
        .collect();
    for plan in plans.iter_mut() {
        pool.add_shared_cache(&mut plan.request, &keys[&plan.name]);
    }
    Ok(Placement::spread(nodes, targets, splits))
}
