"""Known images: each stored image's PDQ hash, reposts of one picture, and the hash banks.

PDQ is the perceptual hash hash-sharing programmes exchange: 256 bits that stay
within a few bits of each other when a picture is re-encoded, resized or lightly
cropped. Two hashes at most :data:`MATCH_DISTANCE` bits apart (the threshold
PDQ's authors recommend) are taken as the same picture.

- Every analysed image's hash is kept (:class:`~monitor.models.ImageFacts`); an
  image matching an earlier one joins its *picture*, so the queue can say "also
  posted by 14 others" and decide them together.
- Every image of a rejected post goes into the local **never-again** bank; a
  later match is rejected automatically, or only flagged if an admin set the
  policy so. A text rule's automatic rejection (a blocked word in the post's
  text) does not bank the picture: the words were the problem, and a campaign
  graphic must not be poisoned by one spammer reusing it.
- Admins import further banks from a file of hashes; a match there is
  escalated and never shown unblurred.

An imported bank is shared by every campaign (as every bank was before campaigns)
or one campaign's own: then only that campaign's posts are matched against it
(:func:`bank_matcher` with its id, from :mod:`monitor.analysis.context`). A match
still escalates the post, and an escalation takes a post off every gallery: a
known abuse image must not stay up on one force's wall because another force's
list found it. The never-again bank is shared: a post's pictures go into it once
people rejected the post in every campaign it is in (a rejection in one campaign
alone does not, or a repost would be rejected automatically on a gallery whose team
approved the picture), and a repost is then caught in every campaign.

Matching is a vectorised XOR and popcount over every hash of a bank held in
memory (32 bytes a hash: a million take 32 MB), reloaded when the bank changes.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.analysis.findings import Verdict
from monitor.errors import UserError
from monitor.models import (
    AuditEvent,
    Campaign,
    HashBank,
    HashBankEntry,
    ImageFacts,
    MediaItem,
    Post,
    PostStatus,
    utcnow,
)
from monitor.services import audit
from monitor.services.app_settings import get_app_setting, set_app_setting
from monitor.services.audit import Action
from monitor.services.rules import no_such

#: Bits two PDQ hashes may differ by and still be one picture (PDQ's recommended 31 of 256).
MATCH_DISTANCE = 31
#: Below this PDQ quality (0-100) a picture is too flat (a plain card) to match on.
MIN_QUALITY = 50
NEVER_AGAIN = "never_again"
IMPORTED = "imported"
#: The admin policy for a match in the never-again bank: ``reject`` (default) or ``flag``.
NEVER_AGAIN_POLICY = "never_again_policy"
POLICIES = ("reject", "flag")
MAX_BANK_FILE_BYTES = 128_000_000
MAX_BANK_HASHES = 2_000_000
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_INSERT_CHUNK = 5000


def pack(hex_hashes: Sequence[str]) -> np.ndarray:
    """Hashes as an (n, 4) array of 64-bit words, the shape :class:`HashIndex` scans."""
    if not hex_hashes:
        return np.zeros((0, 4), dtype=np.uint64)
    raw = np.frombuffer(bytes.fromhex("".join(hex_hashes)), dtype=">u8")
    return raw.astype(np.uint64).reshape(-1, 4)


class HashIndex:
    """Hashes held column by column, so one query costs four XOR-popcount passes."""

    def __init__(self, hex_hashes: Sequence[str]) -> None:
        words = pack(hex_hashes)
        self._columns = [np.ascontiguousarray(words[:, i]) for i in range(4)]
        self.size = len(hex_hashes)

    def distances(self, hex_hash: str) -> np.ndarray:
        """Bits by which ``hex_hash`` differs from each stored hash."""
        query = pack([hex_hash])[0]
        # uint16: four 64-bit words can differ by 256 bits, one more than uint8 holds.
        total: np.ndarray = np.bitwise_count(self._columns[0] ^ query[0]).astype(np.uint16)
        for column, word in zip(self._columns[1:], query[1:], strict=True):
            total += np.bitwise_count(column ^ word)
        return total

    def nearest(self, hex_hash: str, limit: int = MATCH_DISTANCE) -> tuple[int, int] | None:
        """The position and distance of the closest stored hash within ``limit``, if any."""
        if not self.size:
            return None
        found = self.distances(hex_hash)
        best = int(np.argmin(found))
        distance = int(found[best])
        return (best, distance) if distance <= limit else None


@dataclasses.dataclass(frozen=True)
class _BankEntry:
    bank_kind: str
    bank_name: str
    note: str | None


@dataclasses.dataclass
class BankMatcher:
    """Every bank's hashes and what a match in each says."""

    index: HashIndex
    entries: list[_BankEntry]

    def match(self, hex_hash: str, policy: str) -> tuple[str, Verdict] | None:
        """The reason in words and the verdict of the closest banked hash, if one is near."""
        found = self.index.nearest(hex_hash)
        if found is None:
            return None
        position, distance = found
        entry = self.entries[position]
        if entry.bank_kind == IMPORTED:
            return (
                f"Known image: matches the imported hash bank “{entry.bank_name}”"
                f" ({distance} bits apart)",
                Verdict.ESCALATE,
            )
        where = f": {entry.note}" if entry.note else ""
        verdict = Verdict.FLAG if policy == "flag" else Verdict.REJECT
        return f"Known image: a picture rejected before{where}", verdict


_cache_lock = threading.Lock()
#: Per engine (one database), so two databases in one process never share a bank, and
#: per owner of the banks (None: the shared ones; else a campaign's id).
_bank_cache: weakref.WeakKeyDictionary[
    Engine, dict[int | None, tuple[tuple[int, int], BankMatcher]]
] = weakref.WeakKeyDictionary()
_facts_cache: weakref.WeakKeyDictionary[
    Engine, tuple[tuple[int, int], HashIndex, list[tuple[int, int]]]
] = weakref.WeakKeyDictionary()


def _cache_key(session: Session) -> Engine:
    return session.get_bind().engine


def _owned_by(campaign_id: int | None) -> sa.ColumnElement[bool]:
    owner = col(HashBank.campaign_id)
    return owner.is_(None) if campaign_id is None else owner == campaign_id


def bank_matcher(session: Session, campaign_id: int | None = None) -> BankMatcher:
    """The shared banks (or campaign ``campaign_id``'s own) in memory, reloaded only when
    their entries were added or removed."""
    in_banks = col(HashBankEntry.bank_id).in_(
        select(HashBank.id).where(_owned_by(campaign_id)).scalar_subquery()
    )
    count, last = session.execute(
        sa.select(sa.func.count(), sa.func.max(HashBankEntry.id)).where(in_banks)
    ).one()
    signature = (int(count), int(last or 0))
    key = _cache_key(session)
    with _cache_lock:
        cached = _bank_cache.get(key, {}).get(campaign_id)
        if cached is not None and cached[0] == signature:
            return cached[1]
    rows = session.execute(
        sa.select(
            col(HashBankEntry.pdq), col(HashBank.kind), col(HashBank.name), col(HashBankEntry.note)
        )
        .join(HashBank, col(HashBank.id) == col(HashBankEntry.bank_id))
        .where(_owned_by(campaign_id))
        .order_by(col(HashBankEntry.id))
    ).all()
    matcher = BankMatcher(
        HashIndex([row[0] for row in rows]), [_BankEntry(row[1], row[2], row[3]) for row in rows]
    )
    with _cache_lock:
        _bank_cache.setdefault(key, {})[campaign_id] = (signature, matcher)
    return matcher


def campaigns_with_banks(session: Session) -> list[Campaign]:
    """The campaigns that have banks of their own (matched only against their posts)."""
    owners = select(HashBank.campaign_id).where(col(HashBank.campaign_id).is_not(None))
    return list(session.exec(select(Campaign).where(col(Campaign.id).in_(owners))))


def never_again_policy(session: Session) -> str:
    """What a never-again match does: ``reject`` (the default) or ``flag``."""
    value = get_app_setting(session, NEVER_AGAIN_POLICY, "reject")
    return value if value in POLICIES else "reject"


def set_never_again_policy(*, session: Session, policy: str, actor: str) -> None:
    if policy not in POLICIES:
        raise UserError("choose reject or flag for a repost of a rejected picture")
    set_app_setting(
        session, NEVER_AGAIN_POLICY, policy, actor=actor, reason="never-again bank policy"
    )


# --- each image's hash and its picture --------------------------------------------------


def _facts_index(session: Session) -> tuple[HashIndex, list[tuple[int, int]]]:
    """Every stored image hash with (media id, picture), reloaded when images came or went."""
    hashed = col(ImageFacts.pdq).is_not(None)
    count, last = session.execute(
        sa.select(sa.func.count(), sa.func.max(ImageFacts.media_id)).where(hashed)
    ).one()
    signature = (int(count), int(last or 0))
    key = _cache_key(session)
    with _cache_lock:
        cached = _facts_cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]
    rows = session.execute(
        sa.select(col(ImageFacts.pdq), col(ImageFacts.media_id), col(ImageFacts.picture))
        .where(hashed)
        .order_by(col(ImageFacts.media_id))
    ).all()
    index = HashIndex([row[0] for row in rows])
    owners = [(int(row[1]), int(row[2])) for row in rows]
    with _cache_lock:
        _facts_cache[key] = (signature, index, owners)
    return index, owners


def store_facts(session: Session, notes: Mapping[int, Mapping[str, Any]]) -> None:
    """Keep what the detectors learnt about each image (``Context.notes``), in the caller's
    transaction, after the findings were applied: the hash joins the image to its picture,
    the read text is kept for the card. An image of a post already rejected, by a person
    or by image analysis (not by a text rule), goes into the never-again bank at once."""
    if not notes:
        return
    index, owners = _facts_index(session)
    now = utcnow()
    for media_id, note in notes.items():
        pdq = note.get("pdq")
        quality = note.get("pdq_quality")
        picture = media_id
        if isinstance(pdq, str) and (quality or 0) >= MIN_QUALITY:
            # A mirrored or turned repost matches through one of its variants.
            for candidate in note.get("pdq_variants") or [pdq]:
                found = index.nearest(candidate)
                if found is not None and owners[found[0]][0] != media_id:
                    picture = owners[found[0]][1]
                    break
        facts = session.get(ImageFacts, media_id) or ImageFacts(
            media_id=media_id, post_id=int(note["post_id"]), picture=picture, analysed_at=now
        )
        facts.pdq = pdq if isinstance(pdq, str) else None
        facts.pdq_quality = quality if isinstance(quality, int) else None
        facts.picture = picture
        facts.read_text = note.get("text") or None
        facts.analysed_at = now
        session.add(facts)
    session.flush()
    post_ids = {int(note["post_id"]) for note in notes.values()}
    rejected = session.exec(
        select(Post).where(col(Post.id).in_(post_ids), Post.status == PostStatus.REJECTED)
    )
    for post in rejected:
        if _rejection_banks(session, post):
            bank_rejected_post(session, post)


def _rejection_banks(session: Session, post: Post) -> bool:
    """Was the post's rejection about its pictures? A person's, or image analysis's (an
    explicit image, a known one, words in the picture), is; a text rule's (``rule:N``,
    the post's words) is not, nor a campaign's own list's (an automatic rejection in
    one campaign: the shared bank must not carry one campaign's list to the others)."""
    last = session.exec(
        select(AuditEvent)
        .where(AuditEvent.post_id == post.id, AuditEvent.action == Action.REJECT)
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    if last is None or last.actor.startswith("rule:"):
        return False
    automatic = last.actor.startswith("analysis:")
    return not (automatic and last.campaign_id is not None)


def facts_by_media(session: Session, media_ids: Sequence[int]) -> dict[int, ImageFacts]:
    if not media_ids:
        return {}
    rows = session.exec(select(ImageFacts).where(col(ImageFacts.media_id).in_(list(media_ids))))
    return {row.media_id: row for row in rows}


@dataclasses.dataclass(frozen=True)
class Reposts:
    """The other posts carrying a picture this post carries."""

    #: How many other posts carry it (any status).
    others: int
    #: Every pending post carrying it, this one included: id -> version, for one decision.
    pending: dict[int, int]
    picture: int


def reposts_for(session: Session, posts: Sequence[Post]) -> dict[int, Reposts]:
    """For each post on a page, the reposts of its most reposted picture (two queries)."""
    ids = [post.id for post in posts if post.id is not None]
    if not ids:
        return {}
    own = session.execute(
        sa.select(col(ImageFacts.post_id), col(ImageFacts.picture)).where(
            col(ImageFacts.post_id).in_(ids)
        )
    ).all()
    pictures = {int(picture) for _, picture in own}
    if not pictures:
        return {}
    carriers: dict[int, dict[int, tuple[str, int]]] = {picture: {} for picture in pictures}
    rows = session.execute(
        sa.select(col(ImageFacts.picture), col(Post.id), col(Post.status), col(Post.version))
        .join(Post, col(Post.id) == col(ImageFacts.post_id))
        .where(col(ImageFacts.picture).in_(pictures))
    )
    for picture, post_id, status, version in rows:
        carriers[int(picture)][int(post_id)] = (str(status), int(version))
    found: dict[int, Reposts] = {}
    for post_id, picture in own:
        posts_with = carriers[int(picture)]
        if len(posts_with) < 2:
            continue
        group = Reposts(
            others=len(posts_with) - 1,
            pending={
                pid: version
                for pid, (status, version) in posts_with.items()
                if status == PostStatus.PENDING
            },
            picture=int(picture),
        )
        best = found.get(int(post_id))
        if best is None or group.others > best.others:
            found[int(post_id)] = group
    return found


def posts_with_picture_of(session: Session, post: Post, *, limit: int) -> list[Post]:
    """Every post carrying one of ``post``'s pictures (``post`` first), oldest first."""
    pictures = select(ImageFacts.picture).where(ImageFacts.post_id == post.id)
    ids = select(ImageFacts.post_id).where(col(ImageFacts.picture).in_(pictures))
    others = session.exec(
        select(Post)
        .where(col(Post.id).in_(ids), Post.id != post.id)
        .order_by(col(Post.created_at), col(Post.id))
        .limit(limit - 1)
    ).all()
    return [post, *others]


# --- the never-again bank --------------------------------------------------------------


def _never_again_bank(session: Session) -> HashBank:
    bank = session.exec(
        select(HashBank).where(HashBank.kind == NEVER_AGAIN, _owned_by(None))
    ).first()
    if bank is None:
        bank = HashBank(
            kind=NEVER_AGAIN, name="Never again", created_at=utcnow(), created_by="system"
        )
        session.add(bank)
        session.flush()
    return bank


def bank_rejected_post(session: Session, post: Post) -> int:
    """Put every hashed image of a rejected post into the never-again bank (once). Returns
    how many hashes were added; images not analysed yet are added when they are. The note
    names the post by row id and never quotes the reason: a moderator's note can hold
    personal details, and this one is shown on other people's posts."""
    facts = session.exec(
        select(ImageFacts).where(ImageFacts.post_id == post.id, col(ImageFacts.pdq).is_not(None))
    ).all()
    if not facts:
        return 0
    bank = _never_again_bank(session)
    known = set(
        session.exec(
            select(HashBankEntry.pdq).where(
                HashBankEntry.bank_id == bank.id, HashBankEntry.post_id == post.id
            )
        )
    )
    positions = {
        item.id: item.position
        for item in session.exec(select(MediaItem).where(MediaItem.post_id == post.id))
    }
    added = 0
    for fact in facts:
        if fact.pdq in known or fact.pdq is None:
            continue
        number = positions.get(fact.media_id, 0) + 1
        # The post by its row id, not its platform id: an id at source can hold the
        # author's handle, and this note outlives the post (retention, erasure).
        note = f"image {number} of post {post.id}, rejected {utcnow():%d %b %Y}"
        session.add(
            HashBankEntry(
                bank_id=bank.id or 0, pdq=fact.pdq, note=note, post_id=post.id, added_at=utcnow()
            )
        )
        added += 1
    return added


def unbank_post(session: Session, post_id: int) -> None:
    """A rejection was undone (or reversed): the post's pictures leave the never-again bank."""
    bank_ids = select(HashBank.id).where(HashBank.kind == NEVER_AGAIN)
    session.execute(
        sa.delete(HashBankEntry).where(
            col(HashBankEntry.post_id) == post_id, col(HashBankEntry.bank_id).in_(bank_ids)
        )
    )


# --- imported banks --------------------------------------------------------------------


def parse_bank_file(data: bytes) -> list[str]:
    """The PDQ hashes in a bank file: one a line, 64 hex digits as the first field (CSV,
    TSV or space-separated, as hash-sharing exports come); ``#`` comments, blank lines and
    one header line are skipped. Anything else is refused with its line number."""
    if not data.strip():
        raise UserError("the file is empty: give one PDQ hash (64 hex digits) a line")
    if len(data) > MAX_BANK_FILE_BYTES:
        raise UserError(f"the file is over {MAX_BANK_FILE_BYTES // 1_000_000} MB")
    if b"\x00" in data:
        raise UserError("the file is not text: give one PDQ hash (64 hex digits) a line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError("the file is not UTF-8 text") from None
    hashes: dict[str, None] = {}
    header_allowed = True
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first = re.split(r"[\s,;]+", line, maxsplit=1)[0].strip("\"'")
        if _HEX.fullmatch(first):
            hashes[first.lower()] = None
        elif header_allowed and first.replace("_", "").isalpha():
            pass  # the first line may name the columns ("pdq_hash,quality,...")
        else:
            raise UserError(f"line {number}: {first[:70]!r} is not a PDQ hash (64 hex digits)")
        header_allowed = False
        if len(hashes) > MAX_BANK_HASHES:
            raise UserError(f"a bank holds at most {MAX_BANK_HASHES:,} hashes")
    if not hashes:
        raise UserError("the file has no PDQ hashes (64 hex digits a line)")
    return list(hashes)


def _visible(campaign: Campaign | None) -> sa.ColumnElement[bool]:
    """The banks ``campaign``'s team sees: the shared ones and its own (None: every bank)."""
    if campaign is None:
        return sa.true()
    return sa.or_(_owned_by(None), _owned_by(campaign.id))


def import_bank(
    *,
    session: Session,
    name: str,
    data: bytes,
    actor: str,
    campaign: Campaign | None = None,
) -> tuple[HashBank, int]:
    """Store an imported hash bank (audited), shared or ``campaign``'s own: a match there
    is escalated, never shown."""
    name = " ".join(name.split())[:200]
    if not name:
        raise UserError("name the bank (e.g. the programme and the date of the list)")
    hashes = parse_bank_file(data)
    exists = session.exec(
        select(HashBank).where(HashBank.kind == IMPORTED, HashBank.name == name, _visible(campaign))
    ).first()
    if exists is not None:
        raise UserError(f"a bank called {name!r} exists: delete it first to replace it")
    now = utcnow()
    bank = HashBank(
        kind=IMPORTED,
        name=name,
        created_at=now,
        created_by=actor,
        campaign_id=None if campaign is None else campaign.id,
    )
    session.add(bank)
    session.flush()
    for start in range(0, len(hashes), _INSERT_CHUNK):
        session.execute(
            sa.insert(HashBankEntry),
            [
                {"bank_id": bank.id, "pdq": h, "added_at": now}
                for h in hashes[start : start + _INSERT_CHUNK]
            ],
        )
    audit.record(
        session,
        actor=actor,
        action=Action.HASH_BANK_IMPORTED,
        reason=f"Hash bank “{name}”",
        detail={"bank_id": bank.id, "hashes": len(hashes)},
        campaign_id=bank.campaign_id,
    )
    return bank, len(hashes)


def delete_bank(
    *, session: Session, bank_id: int, actor: str, within: Campaign | None = None
) -> HashBank:
    """Delete an imported bank; ``within``: the campaign a campaign admin acts in (its own
    banks only; None: an install admin, any bank)."""
    bank = session.get(HashBank, bank_id)
    if bank is None or bank.kind != IMPORTED:
        raise no_such(f"imported hash bank {bank_id}", within)
    if within is not None and bank.campaign_id != within.id:
        if bank.campaign_id is None:
            raise UserError(
                f"hash bank {bank_id} is shared by every campaign: only an install admin deletes it"
            )
        raise no_such(f"imported hash bank {bank_id}", within)
    session.execute(sa.delete(HashBankEntry).where(col(HashBankEntry.bank_id) == bank_id))
    session.delete(bank)
    audit.record(
        session,
        actor=actor,
        action=Action.HASH_BANK_DELETED,
        reason=f"Hash bank “{bank.name}”",
        detail={"bank_id": bank_id},
        campaign_id=bank.campaign_id,
    )
    return bank


def set_bank_scope(
    *,
    session: Session,
    bank_id: int,
    campaign: Campaign | None,
    actor: str,
    within: Campaign | None = None,
) -> HashBank:
    """Share an imported bank with every campaign (``campaign`` None) or make it one
    campaign's own: an install admin's choice (``within`` None), audited."""
    if within is not None:
        raise UserError("only an install admin shares a list or makes it one campaign's")
    bank = session.get(HashBank, bank_id)
    if bank is None or bank.kind != IMPORTED:
        raise UserError(f"no imported hash bank {bank_id}")
    wanted = None if campaign is None else campaign.id
    if bank.campaign_id != wanted:
        bank.campaign_id = wanted
        session.add(bank)
        audit.record(
            session,
            actor=actor,
            action=Action.RULE_SCOPE_CHANGED,
            reason=f"Hash bank “{bank.name}”",
            detail={"bank_id": bank_id, "shared": wanted is None},
            campaign_id=wanted,
        )
    return bank


def list_banks(session: Session, campaign: Campaign | None = None) -> list[tuple[HashBank, int]]:
    """Every bank (or those ``campaign``'s team sees) with its number of hashes, the
    never-again bank first."""
    counts = dict(
        session.execute(
            sa.select(col(HashBankEntry.bank_id), sa.func.count()).group_by(
                col(HashBankEntry.bank_id)
            )
        ).all()
    )
    banks = session.exec(
        select(HashBank)
        .where(_visible(campaign))
        .order_by(col(HashBank.kind).desc(), col(HashBank.id))
    )
    return [(bank, int(counts.get(bank.id, 0))) for bank in banks]
