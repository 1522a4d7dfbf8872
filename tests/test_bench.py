"""Smaller versions of the benchmarks (bench/), so a regression fails here: the same
scenarios and the same checks of correctness (counts, nothing lost, nothing oversold, no
429s, edits bounded). Speed figures come from `python -m bench`, never from timed asserts."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
from sqlalchemy import select

from bench import broadcast, crash, flash_sale, memory, team_rush, throughput
from bench.__main__ import main as bench_main
from bench.common import StatementCounter, percentile, prepare


def options(module, tmp_path: Path, **values) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in values.items():
        setattr(args, key, value)
    args.tmp = str(tmp_path)
    return args


async def test_throughput_processes_every_update_of_the_mixed_stream(database_url, tmp_path):
    await prepare(database_url)
    result = await throughput.run(database_url, options(throughput, tmp_path, updates=600))
    assert result["updates"] == 600
    kinds = ("chatter", "callbacks", "commands", "inline_queries", "card_taps")
    assert sum(result[k] for k in kinds) == 600
    assert result["callbacks"] > 60 and result["commands"] > 25
    assert result["inline_queries"] > 10 and result["card_taps"] > 10
    assert result["errors"] == 0, result["first_errors"]
    # every tap answered, on a group post or on a card sent through inline mode
    assert result["answered"] == result["callbacks"] + result["card_taps"]
    if result["inline_handled"]:
        assert result["inline_answered"] == result["inline_queries"]
    assert result["replies"] == result["commands"]  # every command replied to
    assert result["consistent"] and result["processed_ok"]
    assert result["tuan_ups"] > 0 and result["bare_ups"] > 0
    assert result["ratio"] == pytest.approx(result["tuan_ups"] / result["bare_ups"], abs=1e-3)
    # the chatter-only and Join-only streams of the same run
    assert result["chatter_stream"] == 600 and result["chatter_us"] > 0
    assert result["bare_chatter_us"] > 0
    assert result["chatter_vs_bare"] == pytest.approx(
        result["chatter_us"] / result["bare_chatter_us"], abs=0.01
    )
    assert result["joins_answered"] == result["join_taps"] == 30
    assert result["join_statements"] >= 2 * result["join_taps"]  # at least a write and a commit
    assert result["statements_per_join"] == pytest.approx(
        result["join_statements"] / result["join_taps"], abs=0.01
    )
    targets = result["targets"]
    assert targets["chatter_vs_bare"] == 1.5 and targets["statements_per_join"] == 6
    assert targets["ratio"] in (0.25, 0.20)


def test_the_stream_is_deterministic_and_mixed_as_the_issue_says():
    one, kinds = throughput.stream(2000, 300, list(range(1, 21)), seed=3, date=1_800_000_000)
    two, _ = throughput.stream(2000, 300, list(range(1, 21)), seed=3, date=1_800_000_000)
    assert [u.model_dump() for u in one] == [u.model_dump() for u in two]
    assert 0.56 < kinds["chatter"] / 2000 < 0.64
    assert 0.17 < kinds["callback"] / 2000 < 0.23
    assert 0.08 < kinds["command"] / 2000 < 0.12
    assert 0.03 < kinds["inline"] / 2000 < 0.07
    assert 0.03 < kinds["card"] / 2000 < 0.07
    cards = [u.callback_query for u in one if u.callback_query and u.callback_query.message is None]
    assert len(cards) == kinds["card"] and all(q.inline_message_id for q in cards)
    assert all(q.data.startswith("ic:") for q in cards)
    queries = [u.inline_query.query for u in one if u.inline_query]
    assert len(queries) == kinds["inline"] and "" in queries
    titles = [f"Deal {k}" for k in range(20)]
    assert all(any(t.startswith(q) or t.lower() == q for t in titles) for q in queries)
    assert any(q not in ("", *titles) for q in queries)  # partial titles too


async def test_flash_sale_sells_exactly_the_stock_and_answers_everyone(database_url, tmp_path):
    await prepare(database_url)
    args = options(flash_sale, tmp_path, joins=200, stock=20)
    result = await flash_sale.run(database_url, args)
    assert result["confirmed"] == 20 and result["stock_left"] == 0
    assert result["oversold"] == 0
    assert result["answered"] == 200
    assert result["joined_answers"] == 20 and result["sold_out_answers"] == 180
    assert 1 <= result["edits"] <= result["edit_bound"]
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]


async def test_a_team_rush_never_passes_a_team_size_the_stock_or_one_team_a_member(
    database_url, tmp_path
):
    await prepare(database_url)
    args = options(team_rush, tmp_path, members=60, teams=20, stock=40)
    result = await team_rush.run(database_url, args)
    assert result["taps"] == result["answered"] == 80 and result["baseline_answered"] == 80
    # 20 units were left after the starters: never more places than that
    assert result["places_taken"] == 20 - result["stock_left"] and result["places_taken"] > 0
    assert result["units_held"] + result["stock_left"] == 40 and result["oversold"] == 0
    assert result["teams_past_size"] == result["teams_inconsistent"] == 0
    assert result["members_in_two_teams"] == 0
    assert result["teams_filled"] + result["teams_open"] == 20 and result["teams_filled"] > 0
    # a member who got a place is refused at their other card (if it came after)
    assert result["answers"].get("You are already in a team of this deal.", 0) <= 20
    assert result["ok"]


async def test_a_stars_flash_sale_answers_every_pre_checkout_while_members_tap(
    database_url, tmp_path
):
    await prepare(database_url)
    args = options(flash_sale, tmp_path, joins=200, stock=20, paid=True, waves=4, wave_gap=0.3)
    result = await flash_sale.run(database_url, args)
    assert result["paid"] == "stars" and result["waves"] == 4
    assert result["confirmed"] == 20 and result["stock_left"] == 0 and result["oversold"] == 0
    assert result["answered"] == 200
    assert result["joined_answers"] == 20 and result["sold_out_answers"] == 180
    # each member who joined got an invoice and paid it at once: every pre-checkout ok
    assert result["invoices"] == 20
    assert result["precheckouts"] == result["precheckouts_answered"] == 20
    assert result["precheckouts_ok"] == 20
    assert 0 <= result["precheckouts_during_taps"] <= 20
    assert math.isfinite(result["precheckout_p99_s"])
    assert 0 < result["precheckout_p50_s"] <= result["precheckout_p99_s"]
    assert result["precheckout_target_s"] == 1.0


async def test_broadcast_respects_telegrams_limits_and_loses_nothing(database_url, tmp_path):
    await prepare(database_url)
    args = options(broadcast, tmp_path, groups=40, scale=10.0)
    result = await broadcast.run(database_url, args)
    assert result["sent"] == result["posted"] == 40
    assert result["lost"] == 0 and result["failed_sends"] == 0
    assert result["429s"] == 0
    # 40 posts at 30 per (scaled) second cannot be faster than one window
    assert result["duration_s"] >= 0.1 * 0.9


async def test_the_limited_fake_refuses_what_exceeds_the_limits():
    from aiogram import Bot
    from aiogram.exceptions import TelegramRetryAfter
    from aiogram.methods import SendMessage

    from bench.common import TOKEN
    from bench.fakes import LimitedTelegram

    api = LimitedTelegram(global_limit=3)
    bot = Bot(TOKEN, session=api)
    await bot(SendMessage(chat_id=-1, text="a"))
    with pytest.raises(TelegramRetryAfter):  # 1 per second per chat
        await bot(SendMessage(chat_id=-1, text="b"))
    await bot(SendMessage(chat_id=-2, text="c"))
    await bot(SendMessage(chat_id=-3, text="d"))
    with pytest.raises(TelegramRetryAfter) as caught:  # 3 per second overall
        await bot(SendMessage(chat_id=-4, text="e"))
    assert caught.value.retry_after == 1
    assert api.too_many == 2 and api.accepted == 3


async def test_crash_and_redelivery_lose_nothing_and_double_nothing(database_url, tmp_path):
    await prepare(database_url)
    args = options(
        crash, tmp_path, updates=100, kills=2, stock=80, concurrency=8,
        ready_members=20, close_deals=2, close_members=5,
        pay_members=20, pay_redelivered=0.3, pay_second=0.3,
    )  # fmt: skip
    result = await crash.run(database_url, args)
    assert result["kills"] == 2 and result["starts"] == 3
    # joins, owner actions, each Stars member's payment and the extra deliveries
    paid = result["payments_sent"]
    assert paid == 20 + result["payments_redelivered"] + result["second_charges"]
    assert result["acknowledged"] == result["updates"] == 100 + 1 + 2 + paid
    assert result["payments_redelivered"] > 0 and result["second_charges"] > 0
    # every acknowledged charge recorded once, each order paid once, every extra refunded
    assert (
        result["payments_acknowledged"]
        == result["payments_recorded"]
        == 20 + result["second_charges"]
    )
    assert result["payments_lost"] == 0
    assert result["orders_paid"] == result["pay_members"] == 20
    assert result["orders_charged_twice"] == result["second_charges"]
    assert result["charged_twice_unrefunded"] == 0 and result["orders_paid_twice"] == 0
    assert result["extra_refunded"] == result["second_charges"] and result["refund_pending"] == 0
    assert result["star_refund_calls"] - result["star_refunds_repeated"] == result["second_charges"]
    # the owner's actions promised a notice to each of their 30 members, and each got one
    assert result["notices_promised"] == result["notices_expected"] == 30
    assert result["notices_lost"] == 0 and result["notices_delivered"] == 30
    # a second copy only from a claim over a killed holder's lapsed lease
    assert result["notices_duplicated"] <= result["notices_reclaimed"]
    assert result["ok"]
    assert result["lost"] == 0
    assert result["duplicates"] == 0
    assert result["stock_equal"] and result["counters_agree"]
    assert result["stock_plus_ordered"] == 80
    assert result["told_in"] > 0 and result["clean_exit"]


async def test_the_http_fake_answers_invoices_and_star_refunds_like_telegram():
    import aiohttp
    from aiogram.types import Message

    from bench.common import TOKEN
    from tests.http_fake import FakeBotApiServer

    server = FakeBotApiServer(TOKEN)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            invoice = {
                "chat_id": "5000001", "title": "Stars", "description": "d", "payload": "pay:1:1",
                "currency": "XTR", "prices": '[{"label": "x", "amount": 50}]',
            }  # fmt: skip
            async with http.post(f"{server.url}/bot{TOKEN}/sendInvoice", data=invoice) as r:
                sent = await r.json()
            refund = {"user_id": "5000001", "telegram_payment_charge_id": "star-1"}
            async with http.post(f"{server.url}/bot{TOKEN}/refundStarPayment", data=refund) as r:
                refunded = await r.json()
    finally:
        await server.stop()
    message = Message.model_validate(sent["result"])
    assert message.chat.id == 5000001
    assert (message.invoice.currency, message.invoice.total_amount) == ("XTR", 50)
    assert refunded == {"ok": True, "result": True}
    assert server.called("refundStarPayment")[0]["telegram_payment_charge_id"] == "star-1"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_memory_smoke_reads_the_peak_of_the_running_bot(database_url, tmp_path):
    await prepare(database_url)
    args = options(memory, tmp_path, groups=40, members=2000, deals=4, updates=300)
    result = await memory.run(database_url, args)
    assert result["callbacks_answered"] > 0
    assert 20 < result["rss_peak_mb"] < 1000
    assert result["rss_peak_mb"] >= result["rss_end_mb"]
    assert result["clean_exit"]
    # the bare aiogram floor, same run: stock aiogram builds its models at import, ours not
    assert result["bare_clean_exit"]
    assert 20 < result["bare_idle_mb"] < result["bare_stock_idle_mb"]
    over = result["rss_idle_peak_mb"] - result["bare_idle_mb"]
    assert abs(result["idle_over_bare_mb"] - over) <= 0.2


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0


def test_bench_command_prints_one_json_line_and_refuses_unknown_names(capsys):
    assert bench_main(["no-such-benchmark"]) == 2
    code = bench_main(["broadcast", "--groups", "5", "--scale", "20"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    import json

    figures = json.loads(lines[0])
    assert figures["bench"] == "broadcast" and figures["db"] == "sqlite"
    assert figures["lost"] == 0 and "machine" in figures and "python" in figures
    assert code == (0 if figures["ok"] else 1)


async def test_statements_count_begin_and_commit_once_on_either_database(db):
    with StatementCounter(db.engine) as counter:
        async with db.transaction() as session:
            await session.execute(select(1))
            await session.execute(select(2))
    assert counter.names == ["BEGIN", "SELECT 1", "SELECT 2", "COMMIT"]
    assert (counter.statements, counter.round_trips) == (3, 4)


async def test_write_path_taps_join_through_the_dispatcher_and_the_floor(database_url, tmp_path):
    from bench import write_path

    await prepare(database_url)
    result = await write_path.run(database_url, options(write_path, tmp_path, taps=30))
    assert result["errors"] == 0, result["first_errors"]
    assert result["joined"] == 30 and result["consistent"] and result["processed_ok"]
    assert result["tap_ms"] > 0 and result["floor_ms"] > 0
    assert result["tap_vs_floor"] == pytest.approx(result["tap_ms"] / result["floor_ms"], rel=0.05)
    # counted by the listener: the first tap's statements are listed, the COMMIT last
    assert result["statements"][-1] == "COMMIT"
    assert 0 < result["statements_per_join"] <= result["round_trips_per_join"]
    assert result["statements_per_join"] <= write_path.TARGET_STATEMENTS + 1  # first tap reads more
