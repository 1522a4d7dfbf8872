"""Texts and keyboards of reviews (services.reviews): the line on a deal's post, the
invitation with its star buttons, the member's /reviews, the owner's list with Reply, the
reply posted in the group, and the refusals. HTML; comments and replies are escaped here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Deal, Review
from services import reviews
from services.errors import DomainError
from services.reviews import Mine, Rating
from views.format import TEXT_LIMIT, cut, duration, quote, tg_len

TITLE_MAX = 60
COMMENT_SHOWN = 300  # characters of a comment in the owner's list


def stars(n: int) -> str:
    n = max(0, min(n, reviews.MAX_STARS))
    return "★" * n + "☆" * (reviews.MAX_STARS - n)


def skip_label() -> str:
    return _("Skip")


def remove_label() -> str:
    return "🗑 " + _("Remove my review")


def comment_label(code: str) -> str:
    return "💬 " + _("Comment on {code}").format(code=code)


def remove_code_label(code: str) -> str:
    return "🗑 " + _("Remove {code}").format(code=code)


def reply_label(review_id: int) -> str:
    return "↩️ " + _("Reply to #{id}").format(id=review_id)


def average(rating: Rating) -> str:
    return f"{rating.average:.1f}"


def rating_line(rating: Rating) -> str:
    """'★ 4.6 (12 reviews)': the deal post's line (only when there are reviews)."""
    return "★ " + ngettext(
        "{average} ({n} review)", "{average} ({n} reviews)", rating.count
    ).format(average=average(rating), n=rating.count)


def _title(deal: Deal) -> str:
    return f"{deal.code} “{quote(cut(deal.title, TITLE_MAX))}”"


def invite_text(deal: Deal) -> str:
    return _(
        "How was {deal}? Tap the stars to rate your order (1 to 5). You can add a short "
        "comment afterwards, and change your review for 7 days."
    ).format(deal=_title(deal))


def rated_answer(rated: reviews.Rated) -> str:
    """The alert after a tap on the stars."""
    if not rated.changed:
        return _("Your rating stays {stars}.").format(stars=stars(rated.review.rating))
    return _("Thank you! Rated {stars}.").format(stars=stars(rated.review.rating))


def ask_comment(deal: Deal, review: Review, now: datetime) -> str:
    left = review.created_at + reviews.EDIT_WINDOW - now
    return _(
        "You rated {deal} {stars}. Send a short comment in your own words (up to {max} "
        "characters), or tap Skip. Its figures show on the deal's post; the comment is kept "
        "only for you and the organiser, and /forgetme removes it. You can change your "
        "review for {left}."
    ).format(
        deal=_title(deal),
        stars=stars(review.rating),
        max=reviews.COMMENT_MAX,
        left=duration(left.total_seconds()),
    )


def comment_saved() -> str:
    return _("Your comment is saved. Send /reviews to see or change your reviews.")


def comment_expired() -> str:
    return _(
        "That was a while ago, so I did not save this as a comment. To comment on your "
        "review, tap Comment in /reviews."
    )


def skipped() -> str:
    return _("No comment, fine. Send /reviews to see or change your reviews.")


def removed() -> str:
    return _("Your review is removed.")


def not_text() -> str:
    return _("Please send it as text, or /cancel to stop.")


def usage() -> str:
    return _(
        "Send {mine} for your own reviews, or {deal} (the deal code) for the reviews of a "
        "deal you run."
    ).format(mine="<code>/reviews</code>", deal="<code>/reviews D17</code>")


def _fit(lines: list[str]) -> str:
    text = "\n".join(lines)
    while tg_len(text) > TEXT_LIMIT and len(lines) > 1:
        lines = lines[:-1]
        text = "\n".join([*lines, "…"])
    return text


def mine_text(items: Sequence[Mine], now: datetime) -> str:
    if not items:
        return _(
            "You have nothing to review yet: orders can be reviewed once they are picked up "
            "or delivered."
        )
    lines = ["<b>" + _("Your reviews") + "</b>"]
    for item in items:
        review = item.review
        lines.append("")
        if review is None:
            lines.append(_("{deal}: not reviewed yet.").format(deal=_title(item.deal)))
            continue
        lines.append(f"{_title(item.deal)}: {stars(review.rating)}")
        if review.comment:
            lines.append("💬 " + quote(cut(review.comment, COMMENT_SHOWN)))
        if review.reply_text:
            lines.append("↩️ " + _("Organiser: {reply}").format(reply=quote(review.reply_text)))
        if not reviews.editable(review, now):
            lines.append(_("(more than 7 days old: it can only be removed)"))
    return _fit(lines)


def owner_text(deal: Deal, items: Sequence[Review], rating: Rating) -> str:
    lines = [f"<b>{_title(deal)}</b>"]
    if not rating.count:
        lines.append(_("No reviews yet."))
        return "\n".join(lines)
    lines.append(rating_line(rating))
    for review in items:
        lines.append("")
        lines.append(f"#{review.id} · {stars(review.rating)}")
        if review.comment:
            lines.append("💬 " + quote(cut(review.comment, COMMENT_SHOWN)))
        if review.reply_text:
            lines.append("↩️ " + quote(review.reply_text))
    if not items:
        lines += ["", _("(The figures count the reviews of the same product's other deals.)")]
    return _fit(lines)


def ask_reply(review: Review) -> str:
    return _(
        "Send your public reply to review #{id} ({stars}), up to {max} characters. It is "
        "posted in the deal's groups as a reply to its post, once, and cannot be changed. "
        "/cancel to stop."
    ).format(id=review.id, stars=stars(review.rating), max=reviews.REPLY_MAX)


def reply_sent(told: int) -> str:
    return ngettext(
        "Your reply is saved and will be posted in {n} group.",
        "Your reply is saved and will be posted in {n} groups.",
        told,
    ).format(n=told)


def reply_post(deal: Deal, review: Review) -> str:
    """The organiser's reply in the group, as a reply to the deal's post."""
    return (
        _("The organiser replies to a {stars} review of {deal}:").format(
            stars=stars(review.rating), deal=_title(deal)
        )
        + "\n"
        + quote(review.reply_text or "")
    )


def cancelled() -> str:
    return _("Cancelled.")


def review_error_text(err: DomainError) -> str | None:
    """The sentence for a refusal of reviews (None: not one of them)."""
    if isinstance(err, reviews.NotReviewable):
        return _("Only the buyer can review an order, once it was picked up or delivered.")
    if isinstance(err, reviews.ReviewNotFound):
        return _("That review does not exist any more.")
    if isinstance(err, reviews.EditClosed):
        return _(
            "Reviews can be changed for 7 days after the first rating; you can still remove it."
        )
    if isinstance(err, reviews.AlreadyReplied):
        return _("This review already has your reply: a review gets one reply only.")
    if isinstance(err, reviews.BadStars):
        return _("This button is out of date.")
    return None
