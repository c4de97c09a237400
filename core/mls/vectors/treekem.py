"""Checker for ``treekem.json`` (mlswg/mls-implementations ``test-vectors.md``, RFC 9420 §7.4–§7.6).

Each case gives a ratchet tree, the private state of some leaves (``leaves_private``: leaf HPKE
private key, signature private key, known path secrets) and ``update_paths`` sent by some leaves,
with the GroupContext fields of the provisional epoch (``group_id``, ``epoch``,
``confirmed_transcript_hash``, no extensions). Verification:

* every private leaf's keys match the public tree;
* for each UpdatePath: it applies to the tree (parent hashes, leaf signature), the new tree hash
  equals ``tree_hash_after``, and every private leaf other than the sender decrypts the path secret
  of the lowest common path node (``path_secrets[leaf]``) and derives ``commit_secret``;
* for each private leaf: it creates its own UpdatePath (fresh randomness), and every other private
  leaf processes it to the same commit secret and the same tree.
"""
from __future__ import annotations

from typing import Any

from ..schedule import GroupContext
from ..tree import RatchetTree
from ..treekem import (PrivateTree, apply_update_path, create_update_path, decrypt_update_path,
                       process_update_path)
from ..update_path import UpdatePath
from . import VectorMismatch, expect, unhex


def check(case: dict[str, Any]) -> None:
    suite = case["cipher_suite"]
    tree = RatchetTree.from_bytes(unhex(case["ratchet_tree"]), suite)
    gc = GroupContext(suite, unhex(case["group_id"]), case["epoch"], b"",
                      unhex(case["confirmed_transcript_hash"]))
    privs = {}
    sig_privs = {}
    for lp in case["leaves_private"]:
        li = lp["index"]
        privs[li] = PrivateTree(suite, li, unhex(lp["encryption_priv"]),
                                {ps["node"]: unhex(ps["path_secret"]) for ps in lp["path_secrets"]})
        privs[li].check_against(tree)
        sig_privs[li] = unhex(lp["signature_priv"])

    for k, up in enumerate(case["update_paths"]):
        sender = up["sender"]
        path = UpdatePath.from_bytes(unhex(up["update_path"]))
        expect(f"update_paths[{k}] re-encoding", path.to_bytes(), up["update_path"])
        applied = apply_update_path(tree, sender, path, gc.group_id)
        expect(f"update_paths[{k}] tree_hash_after", applied.new_tree.tree_hash(), up["tree_hash_after"])
        applied.new_tree.verify_parent_hashes()  # the merged tree is parent-hash valid as a whole
        after = None
        for li, priv in privs.items():
            if li == sender:
                continue
            res = decrypt_update_path(applied, gc, priv)
            if res.path_secret is None:
                raise VectorMismatch(f"update_paths[{k}]: leaf {li} decrypted no path secret")
            expect(f"update_paths[{k}] path_secret for leaf {li}", res.path_secret.reveal(),
                   up["path_secrets"][li])
            expect(f"update_paths[{k}] commit_secret at leaf {li}", res.commit_secret.reveal(),
                   up["commit_secret"])
            expect(f"update_paths[{k}] tree_hash_after at leaf {li}", res.tree.tree_hash(),
                   up["tree_hash_after"])
            res.private.check_against(res.tree)
            after = res.tree
        if after is None:
            raise VectorMismatch(f"update_paths[{k}]: no private leaf to process it")

    for li, priv in privs.items():
        mine = create_update_path(tree, li, gc, sig_privs[li])
        mine.private.check_against(mine.tree)
        mine.tree.verify_parent_hashes()
        path = UpdatePath.from_bytes(mine.update_path.to_bytes())
        mine_bytes = mine.tree.to_bytes()
        first = True
        for lj, other in privs.items():
            if lj == li:
                continue
            if first:  # the full receive path once (tree bytes compared), then the private half
                res = process_update_path(tree, li, path, gc, other)
                expect(f"own path of leaf {li}: tree at leaf {lj}", res.tree.to_bytes(), mine_bytes)
                applied = apply_update_path(tree, li, path, gc.group_id)
                first = False
            else:
                res = decrypt_update_path(applied, gc, other)
            expect(f"own path of leaf {li}: commit_secret at leaf {lj}", res.commit_secret.reveal(),
                   mine.commit_secret.reveal())
            expect(f"own path of leaf {li}: tree hash at leaf {lj}", res.tree.tree_hash(),
                   mine.tree.tree_hash())
