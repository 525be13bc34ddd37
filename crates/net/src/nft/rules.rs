//! The number of rules of one nftables chain, from a netlink dump (`NFT_MSG_GETRULE`, filtered by
//! table and chain): what `nft list chain` would show, without nft (1.0.6) first loading every
//! set and map of the table with their elements, which at 10,000 Services costs over a second
//! and hundreds of MiB per look.

use std::io;

use super::netlink::{
    NFT_MSG_GETRULE, NFT_MSG_NEWRULE, NFTA_RULE_CHAIN, NFTA_RULE_TABLE, NLM_F_DUMP, NLM_F_REQUEST,
    Writer, dump,
};

/// The number of rules of chain `chain` of table `inet table` in the calling thread's network
/// namespace (0 when the table or the chain does not exist).
pub(crate) fn count(table: &str, chain: &str) -> io::Result<usize> {
    let mut request = Writer::default();
    request.message(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP);
    request.attr_str(NFTA_RULE_TABLE, table);
    request.attr_str(NFTA_RULE_CHAIN, chain);
    request.end();
    Ok(dump(&request, NFT_MSG_NEWRULE)?.len())
}
