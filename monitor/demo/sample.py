"""The training sample: about 200 posts in the spirit of Child Exploitation Awareness Day.

People write a message of support on their hands and post a photo with
#CEADAY21 and #HelpingHands. Mixed in are the posts a moderator must learn to
catch, each labelled with its :class:`Case` so tests (and trainers) can find
them: a phone number or a school's name in the text, a child's face marked
sensitive, spam riding the hashtag, abusive replies, an off-topic burst that
hijacks the tag, an image with no alt text, and one post edited and one deleted
at source after it arrived.

Times are fractions of a release window (a few minutes) that starts with the
demo: a post with ``release`` 0 is there on the first poll (``age`` says how
long before the start it was posted); later ones are posted and arrive over
the window. :func:`build_sample` is deterministic, so every training session
sees the same posts.
"""

from __future__ import annotations

import dataclasses
import random
from enum import StrEnum
from functools import lru_cache
from typing import Literal

Network = Literal["mastodon", "bluesky", "x", "instagram", "youtube", "reddit", "rss"]
ImageStyle = Literal["hand", "card", "face"]

NETWORKS: tuple[Network, ...] = (
    "mastodon",
    "bluesky",
    "x",
    "instagram",
    "youtube",
    "reddit",
    "rss",
)
#: Fraction of the release window at which the coordinated hijack starts and ends.
HIJACK_WINDOW = (0.45, 0.6)
EDIT_AT = 0.7
DELETE_AT = 0.55
BACKLOG_HOURS = 30


class Case(StrEnum):
    """What a trainee should notice about a post (``None`` on a post: nothing wrong)."""

    PHONE_NUMBER = "phone_number"
    SCHOOL_NAME = "school_name"
    CONTACT_DETAILS = "contact_details"
    CHILD_FACE = "child_face"
    SPAM = "spam"
    ABUSE = "abuse"
    HIJACK = "hijack"
    NO_ALT_TEXT = "no_alt_text"
    EDITED_AT_SOURCE = "edited_at_source"
    DELETED_AT_SOURCE = "deleted_at_source"
    #: A phone number written on the hand in the picture, not in the post's words.
    PHONE_ON_HAND = "phone_on_hand"
    #: A school's name written on the hand (on the sample area's place-name list).
    PLACE_ON_HAND = "place_on_hand"
    #: The same picture posted by several accounts: grouped on the card.
    REPOST = "repost"


@dataclasses.dataclass(frozen=True, slots=True)
class SampleImage:
    """An image drawn at run time (see :mod:`monitor.demo.images`)."""

    style: ImageStyle
    #: What is written on the hand or card.
    words: str
    alt: str | None
    sensitive: bool = False
    #: Seeds the colours, so each image looks a little different.
    variant: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class SamplePost:
    sid: str
    network: Network
    handle: str
    name: str
    text: str
    #: Fraction of the release window after which the post exists (0: before the start).
    release: float
    #: For a post there from the start: seconds before the start it was posted.
    age: float
    image: SampleImage | None = None
    case: Case | None = None
    likes: int = 0
    shares: int = 0
    replies: int = 0
    views: int = 0
    #: Likes gained per minute after release (shares and views grow in proportion).
    growth: float = 0.0
    edit_text: str | None = None
    #: Fractions of the release window at which the post changes or goes at source.
    edit_at: float | None = None
    delete_at: float | None = None


# --- the words ------------------------------------------------------------------------

HAND_WORDS = (
    "You are not alone",
    "Speak up",
    "Ask for help",
    "We see you",
    "Not your fault",
    "Trust your gut",
    "Reach out",
    "Safe to talk",
    "We are listening",
    "Stand together",
    "No secrets",
    "Someone cares",
    "Spot the signs",
    "Never too late",
    "You matter",
    "Help is here",
    "Tell someone",
    "Break the silence",
    "Look closer",
    "Kids not criminals",
    "Ask, listen, act",
    "Be the safe adult",
    "Believe them",
    "Protect, don't judge",
    "Every child counts",
    "Hands up for help",
    "It's OK to tell",
    "Here for you",
    "Notice. Ask. Report.",
    "Childhood not crime",
    "See the child",
    "Hope not harm",
)

CAPTIONS = (
    "We wrote a message on our hands for #CEADAY21: \u201c{words}\u201d. #HelpingHands",
    "Our team's hands today. {words}. #HelpingHands #CEADAY21",
    "{words} \u270b Child Exploitation Awareness Day #CEADAY21 #HelpingHands",
    "Proud to join in. My hand says \u201c{words}\u201d #HelpingHands #CEADAY21",
    "Staff room this morning, every hand with a message. Mine: {words}. #CEADAY21",
    "If one young person sees this and reaches out, it's worth it. {words}. #HelpingHands",
    "Youth club did theirs after football: \u201c{words}\u201d #HelpingHands #CEADAY21",
    "Grooming can look like friendship. {words}. #CEADAY21 #HelpingHands",
    "Our neighbourhood team wrote theirs before patrol. {words} #HelpingHands",
    "Took part with my mum and my nan. {words} \U0001f49c #CEADAY21",
    "Exploitation thrives on silence. {words}. #HelpingHands #CEADAY21",
    "Bus drivers at the depot joined in today: {words}. #CEADAY21",
    "Pharmacy counter team: {words}. Ask us if you're worried. #HelpingHands",
    "Taxi marshals on the rank tonight, hands up: {words} #CEADAY21 #HelpingHands",
    "Library staff: {words}. We're a safe place to ask. #HelpingHands",
    "Know the signs: new phone, new friends, going missing. {words}. #CEADAY21",
)

TEXT_ONLY = (
    "Couldn't find a pen that works on skin so here's my message in words: you are not alone."
    " #CEADAY21 #HelpingHands",
    "Every exploited child was someone's child first. Learn the signs. #CEADAY21",
    "Reminder that county lines gangs target kids who feel they don't belong. Be the adult who"
    " notices. #HelpingHands",
    "Our whole office took part today. Brilliant to see so many hands. #CEADAY21 #HelpingHands",
    "If a young person suddenly has money, clothes or a phone they can't explain, ask gently."
    " #CEADAY21",
    "Parents: talk to your kids about who they talk to online. No lectures, just listen."
    " #HelpingHands",
    "Thank you to everyone sharing their hands today. It matters. #CEADAY21 #HelpingHands",
    "Children who are exploited are victims, not offenders. #CEADAY21",
    "Worried about a child? Talk to the police on 101, or 999 in an emergency. #HelpingHands",
    "Just added my hand to the wall at the community centre. #CEADAY21 #HelpingHands",
    "Going missing from home is often the first sign. Report it every time. #CEADAY21",
    "Our scouts troop made a banner out of painted hands. #HelpingHands",
)

FIRST_NAMES = (
    "Amira", "Ben", "Chloe", "Dev", "Ella", "Farah", "George", "Hana", "Isaac", "Jas",
    "Kofi", "Lena", "Marcus", "Nia", "Owen", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
    "Uma", "Vic", "Wes", "Yasmin", "Zoe", "Alfie", "Bea", "Callum", "Dina", "Eli",
)  # fmt: skip

ORGANISATIONS = (
    "Riverside Youth Club",
    "Northfield Neighbourhood Policing",
    "Eastgate Community Centre",
    "Millbrook Family Hub",
    "Westside Boxing Club",
    "Canal Street Pharmacy",
    "City Bus Depot",
    "Southfields Library",
)

PHONE_POSTS = (
    "Any young person who needs to talk, text me on 07700 900123, day or night. #CEADAY21"
    " #HelpingHands",
    "My hand says SPEAK UP. Parents in Eastgate can ring me on 07700 900456 for a chat."
    " #HelpingHands",
    "Volunteer helpline for our estate: +44 7700 900789. Spread the word! #CEADAY21",
    "Worried about your child? Our family hub is on 0116 496 0123, ask for Dina. #HelpingHands",
    "WhatsApp me 07700-900-321 if you want hand-painting kits for your class #CEADAY21",
)

SCHOOL_POSTS = (
    "So proud of Year 6 at Brookfield Primary School, every hand had a message #CEADAY21"
    " #HelpingHands",
    "The girls' football team from Hollins Park Academy did theirs at lunch! #HelpingHands",
    "St Aidan's Church of England Primary in Millbrook made a whole wall of hands #CEADAY21",
    "Form 9R at Kingsway High School, you smashed it today. #HelpingHands #CEADAY21",
)

CONTACT_POSTS = (
    "Email me at jas.hands.volunteer@example.com if you want posters for your shop #HelpingHands",
    "Drop-in at our hall, LE1 9ZZ, every Tuesday after school. #CEADAY21",
)

CHILD_FACE_POSTS = (
    ("My little one wanted to join in, so proud of her \U0001f49c #HelpingHands #CEADAY21",
     "Ruby"),
    ("Our son (8) wrote his first message today #CEADAY21", "Leo"),
    ("Nephew insisted on a selfie with his hand #HelpingHands", "Max"),
)  # fmt: skip

SPAM_POSTS = (
    ("cheapfollowers247", "Followers Fast",
     "\U0001f525 Get 10K followers TODAY \U0001f525 link in bio #CEADAY21 #HelpingHands #viral"),
    ("cheapfollowers247", "Followers Fast",
     "Grow your account overnight!! DM us #HelpingHands #CEADAY21 #followforfollow"),
    ("cheapfollowers247", "Followers Fast",
     "Real followers, real fast, no password needed \U0001f4af #HelpingHands"),
    ("crypto_signals_uk", "Signals UK",
     "Turned \u00a3200 into \u00a34,000 this week \U0001f680 ask me how #HelpingHands #CEADAY21"),
    ("crypto_signals_uk", "Signals UK",
     "Free trading signals group, only 20 places left!! #CEADAY21"),
    ("crypto_signals_uk", "Signals UK",
     "Financial freedom is one message away \U0001f4b8 #HelpingHands #passiveincome"),
    ("bestreplica_watches", "Replica Deals",
     "Designer watches 90% off, today only #CEADAY21 #HelpingHands"),
    ("bestreplica_watches", "Replica Deals",
     "Helping hands deserve a nice watch \u231a shop now #HelpingHands"),
    ("loanz4u_now", "Quick Loans",
     "Need cash fast? Approved in minutes, no credit checks #CEADAY21 #HelpingHands"),
    ("loanz4u_now", "Quick Loans",
     "Loans for everyone!!! #HelpingHands #money #fast"),
)  # fmt: skip

ABUSE_POSTS = (
    ("angrydave77", "Dave",
     "@NorthfieldPolice maybe do your actual job instead of hand selfies, you useless lot"
     " #CEADAY21"),
    ("angrydave77", "Dave",
     "Pathetic. Virtue signalling clowns the lot of you #HelpingHands"),
    ("truth_teller_x", "Truth Teller",
     "@EastgateCC nobody cares about your stupid hands, get a real job #CEADAY21"),
    ("truth_teller_x", "Truth Teller",
     "These kids are criminals, stop making excuses for scum #HelpingHands"),
    ("nomorewoke", "No More",
     "@MillbrookHub shut up and go away, idiots #CEADAY21 #HelpingHands"),
    ("nomorewoke", "No More",
     "Imagine thinking writing on your hand helps anyone. Morons. #HelpingHands"),
    ("r_k_1990", "RK",
     "@Amira_writes you look ridiculous, delete this #CEADAY21"),
    ("r_k_1990", "RK",
     "Whoever runs this account needs sacking #HelpingHands"),
)  # fmt: skip

HIJACK_POSTS = (
    "HELPING HANDS by Northbound is the song of the year, stream it NOW \U0001f3b6 #HelpingHands",
    "Northbound fans get #HelpingHands trending!!! \U0001f4aa",
    "Can't stop playing Helping Hands on repeat #HelpingHands #Northbound",
    "#HelpingHands at number 1 or I riot \U0001f62d",
    "Who else cried at the Helping Hands video #Northbound #HelpingHands",
    "Northbound tour tickets on sale Friday!! #HelpingHands",
    "STREAM HELPING HANDS STREAM HELPING HANDS #HelpingHands",
    "the bridge in helping hands is a masterpiece #HelpingHands",
    "Radio 1 play Helping Hands by Northbound challenge #HelpingHands",
    "Helping Hands dance challenge part 3 \U0001f483 #HelpingHands #Northbound",
    "Northbound on the breakfast show tomorrow!!! #HelpingHands",
    "vote Northbound for best group #HelpingHands #Northbound",
    "first time hearing Helping Hands live and I'm shaking #HelpingHands",
    "if you're not streaming Helping Hands what are you doing #HelpingHands",
    "Northbound merch drop at 7pm #HelpingHands",
    "helping hands > everything else this year #HelpingHands #Northbound",
)

NO_ALT_POSTS = (
    "Here's ours! #CEADAY21 #HelpingHands",
    "Whole family did it \U0001f64c #HelpingHands",
    "Team photo from the depot #CEADAY21",
    "Messages from our Tuesday group #HelpingHands #CEADAY21",
    "Mine \u270b #HelpingHands",
    "From all of us at the library #CEADAY21",
)

NEWS_POSTS = (
    ("Police and partners mark Child Exploitation Awareness Day",
     "Officers, youth workers and teachers across the county are writing messages on their"
     " hands today for #CEADAY21. Read how to spot the signs of exploitation."),
    ("Campaign asks residents to show #HelpingHands",
     "The Violence Reduction Network is asking everyone to share a photo of a message of"
     " support written on their hand, tagged #HelpingHands and #CEADAY21."),
    ("Hundreds join #CEADAY21 hands campaign",
     "Hundreds of photos have been shared on the first morning of the campaign. Thank you to"
     " everyone who has taken part. #HelpingHands"),
)  # fmt: skip

#: The sample area's schools and estates (the demo loads them as a place-name list).
SAMPLE_PLACES = (
    "Brookfield Primary School",
    "Hollins Park Academy",
    "Kingsway High School",
    "Eastgate Academy",
    "Millbrook Estate",
)

#: Words written on a hand that image analysis must read (the post's text is harmless).
HAND_PHONE_WORDS = ("Text me 07700 900654", "Call 07700 900987")
HAND_PLACE_WORDS = ("Eastgate Academy",)
REPOST_CAPTIONS = (
    "Sharing this, says it all #HelpingHands",
    "This 👇 #CEADAY21",
    "Saw this and had to repost #HelpingHands #CEADAY21",
    "So true #CEADAY21",
)

EDITED_TEXT = (
    "EDIT: message me on 07700 900777 for free hand-painting kits for your kids' class!"
    " #CEADAY21 #HelpingHands"
)


# --- assembling ---------------------------------------------------------------------


def _handle(network: Network, user: str) -> str:
    """A handle in the network's own style."""
    return {
        "mastodon": f"@{user}@social.example",
        "bluesky": f"{user}.bsky.social",
        "x": f"@{user}",
        "instagram": user,
        "youtube": f"@{user}",
        "reddit": f"u/{user}",
        "rss": "news.force.example",
    }[network]


def _user(rng: random.Random, index: int) -> tuple[str, str]:
    """A made-up person or organisation: (user name, display name)."""
    if index % 5 == 0:
        name = ORGANISATIONS[(index // 5) % len(ORGANISATIONS)]
        return name.replace(" ", ""), name
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    suffix = rng.choice(("", "_writes", "_h", "88", "_uk", "_vrn"))
    return f"{first}{suffix}", first


class _Builder:
    def __init__(self) -> None:
        self.rng = random.Random(2021_03_18)
        self.posts: list[SamplePost] = []

    def add(
        self,
        *,
        network: Network,
        user: str,
        name: str,
        text: str,
        backlog: bool,
        image: SampleImage | None = None,
        case: Case | None = None,
        release: float | None = None,
    ) -> SamplePost:
        rng = self.rng
        if release is None:
            release = 0.0 if backlog else round(rng.uniform(0.02, 1.0), 4)
        age = round(rng.uniform(0.05, BACKLOG_HOURS) * 3600) if backlog else 0.0
        post = SamplePost(
            sid=f"s{len(self.posts) + 1:03d}",
            network=network,
            handle=_handle(network, user),
            name=name,
            text=text,
            release=release,
            age=age,
            image=image,
            case=case,
            likes=rng.randint(0, 40),
            shares=rng.randint(0, 12),
            replies=rng.randint(0, 6),
            views=rng.randint(50, 900),
            growth=round(rng.uniform(0.5, 6.0), 2),
        )
        self.posts.append(post)
        return post

    def network(self) -> Network:
        return self.rng.choice(NETWORKS[:-1])


def _genuine(builder: _Builder, count: int) -> None:
    rng = builder.rng
    for index in range(count):
        user, name = _user(rng, index)
        words = HAND_WORDS[index % len(HAND_WORDS)]
        if index % 6 == 5:
            text, image = TEXT_ONLY[(index // 6) % len(TEXT_ONLY)], None
        else:
            text = CAPTIONS[index % len(CAPTIONS)].format(words=words)
            style: ImageStyle = "card" if index % 4 == 3 else "hand"
            alt = (
                f"A hand with \u201c{words}\u201d written on the palm in marker pen."
                if style == "hand"
                else f"A handwritten card that reads \u201c{words}\u201d."
            )
            image = SampleImage(style, words, alt, variant=index)
        builder.add(
            network=builder.network(),
            user=user,
            name=name,
            text=text,
            image=image,
            backlog=index % 5 < 3,
        )


def _cases(builder: _Builder, release_base: int) -> None:
    rng = builder.rng
    for index, text in enumerate(PHONE_POSTS):
        user, name = _user(rng, release_base + index)
        builder.add(
            network=builder.network(),
            user=user,
            name=name,
            text=text,
            backlog=index % 2 == 0,
            case=Case.PHONE_NUMBER,
        )
    for index, text in enumerate(SCHOOL_POSTS):
        user, name = _user(rng, release_base + 7 + index)
        image = SampleImage("hand", HAND_WORDS[index], f"Children's hands with messages, {name}.")
        builder.add(
            network=builder.network(),
            user=user,
            name=name,
            text=text,
            image=image if index % 2 == 0 else None,
            backlog=index % 2 == 1,
            case=Case.SCHOOL_NAME,
        )
    for index, text in enumerate(CONTACT_POSTS):
        user, name = _user(rng, release_base + 13 + index)
        builder.add(
            network=builder.network(),
            user=user,
            name=name,
            text=text,
            backlog=True,
            case=Case.CONTACT_DETAILS,
        )
    for index, (text, child) in enumerate(CHILD_FACE_POSTS):
        user, name = _user(rng, release_base + 17 + index)
        image = SampleImage(
            "face",
            child,
            f"A young child smiling at the camera, holding up a hand with a message ({child}).",
            sensitive=True,
            variant=index,
        )
        builder.add(
            network=("instagram", "x", "bluesky")[index],
            user=user,
            name=name,
            text=text,
            image=image,
            backlog=index != 1,
            case=Case.CHILD_FACE,
        )
    spammers = list(dict.fromkeys(user for user, _, _ in SPAM_POSTS))
    for index, (user, name, text) in enumerate(SPAM_POSTS):
        builder.add(
            # One account stays on one network, posting again and again.
            network=("x", "instagram")[spammers.index(user) % 2],
            user=user,
            name=name,
            text=text,
            backlog=index < 6,
            case=Case.SPAM,
        )
    abusers = list(dict.fromkeys(user for user, _, _ in ABUSE_POSTS))
    for index, (user, name, text) in enumerate(ABUSE_POSTS):
        builder.add(
            network=("x", "bluesky", "reddit")[abusers.index(user) % 3],
            user=user,
            name=name,
            text=text,
            backlog=index < 4,
            case=Case.ABUSE,
        )
    start, end = HIJACK_WINDOW
    for index, text in enumerate(HIJACK_POSTS):
        fan = f"northbound_{('stan', 'fan', 'army', 'lover')[index % 4]}{index + 1:02d}"
        builder.add(
            network=("x", "instagram", "bluesky", "youtube")[index % 4],
            user=fan,
            name=f"Northbound fan {index + 1}",
            text=text,
            backlog=False,
            case=Case.HIJACK,
            release=round(start + (end - start) * index / len(HIJACK_POSTS), 4),
        )
    for index, text in enumerate(NO_ALT_POSTS):
        user, name = _user(rng, release_base + 21 + index)
        words = HAND_WORDS[(index * 7) % len(HAND_WORDS)]
        builder.add(
            network=builder.network(),
            user=user,
            name=name,
            text=text,
            image=SampleImage("hand", words, None, variant=100 + index),
            backlog=index % 2 == 0,
            case=Case.NO_ALT_TEXT,
        )
    for index, words in enumerate(HAND_PHONE_WORDS + HAND_PLACE_WORDS):
        user, name = _user(rng, release_base + 30 + index)
        builder.add(
            network=builder.network(),
            user=user,
            name=name,
            text=CAPTIONS[index].format(words="Speak up"),
            image=SampleImage(
                "hand", words, "A hand with a message written on it.", variant=200 + index
            ),
            backlog=index % 2 == 0,
            case=Case.PLACE_ON_HAND if words in HAND_PLACE_WORDS else Case.PHONE_ON_HAND,
        )
    shared = SampleImage(
        "card", "Kids not criminals", "A card that reads “Kids not criminals”.", variant=300
    )
    for index, text in enumerate(REPOST_CAPTIONS):
        user, name = _user(rng, release_base + 40 + index)
        builder.add(
            network=builder.network(),
            user=user,
            name=name,
            text=text,
            image=shared,
            backlog=index < 2,
            case=Case.REPOST,
        )
    for index, (title, body) in enumerate(NEWS_POSTS):
        builder.add(
            network="rss",
            user="news",
            name="County Police news",
            text=f"{title}\n\n{body}",
            backlog=index < 2,
        )


def _mark_edit_and_delete(posts: list[SamplePost]) -> list[SamplePost]:
    """One approvable backlog post is edited at source, another deleted, mid-session."""
    plain = [p for p in posts if p.case is None and p.release == 0 and p.image is not None]
    edited, deleted = plain[0], plain[1]
    result = []
    for post in posts:
        if post is edited:
            post = dataclasses.replace(
                post, case=Case.EDITED_AT_SOURCE, edit_text=EDITED_TEXT, edit_at=EDIT_AT
            )
        elif post is deleted:
            post = dataclasses.replace(post, case=Case.DELETED_AT_SOURCE, delete_at=DELETE_AT)
        result.append(post)
    return result


@lru_cache(maxsize=1)
def build_sample() -> tuple[SamplePost, ...]:
    """Every sample post, in release order (then by id), the same on every call."""
    builder = _Builder()
    _genuine(builder, 140)
    _cases(builder, 140)
    posts = _mark_edit_and_delete(builder.posts)
    return tuple(sorted(posts, key=lambda p: (p.release, p.sid)))
