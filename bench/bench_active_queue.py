"""How many votes each queue order (FIFO vs active) needs to recover the hidden order of held-out pairs.

A simulation through the real labelling queue (annotations.store on a SQLite file; the order switched with
``store.set_queue_order``, the project setting ``next_pair`` reads), with scripted annotators:

- each sample has ``--responses`` responses with a hidden utility u ~ N(0, 1);
- evaluator scores are the utility plus noise: video samples (task 1) get three CLIP-style members,
  ``25 + 2.5 (u + N(0, sd_m))`` with sd_m = MEMBER_NOISE, and their mean stored as ``ensemble`` (as the
  miner stores them); text-only samples (task 3, ``--text-only`` of them) get an LLM judge score,
  ``round(5 + 1.5 (u + N(0, JUDGE_NOISE)))`` clipped to 0..10. The store computes each pair's uncertainty
  from these scores (annotations.active) as it does for mined pairs;
- ``--held-out`` of each sample's response pairs are held out (never shown); the rest go to the queue,
  oriented as mined (side a = the evaluators' favourite);
- ``--overlap`` annotators take turns at the queue (``store.next_pair`` at that overlap) and vote by
  Bradley-Terry on the hidden utilities, P(a better) = sigmoid(scale (u_a - u_b)). Each (pair, k-th vote)
  has its own random draw, the same for both orders (common random numbers: the orders differ only in which
  pairs get votes when).

Every ``--every`` votes, a Bradley-Terry fit reads the stored votes back from the database, with the evaluator
scores as its prior (per response: the Gaussian posterior of the utility given that response's scores under
the noise model above, on the annotators' scale). Two accuracies of the fitted order against the hidden one:
on the held-out pairs, and on the queue's own pairs (the labels the export trains on). Tables: median votes
each order needed to reach 80 / 90 / 95 % ("-": not reached once every queue pair has its votes), and the
ratio FIFO / active.

    .venv/bin/python bench/bench_active_queue.py [--samples 150] [--responses 5] [--held-out 0.3] [--overlap 1]
        [--scale 6] [--seeds 5] [--every 15] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEMBER_NOISE = (1.8, 2.4, 3.0)  # per-member noise sd, in utility units
JUDGE_NOISE = 1.4
LEVELS = (0.80, 0.90, 0.95)
ORDERS = ("fifo", "active")
#: What a point of a curve measures: the held-out pairs (never shown), and the queue's own pairs.
METRICS = ("held_out", "queue")
TITLES = {
    "held_out": "held-out pairs (never shown): accuracy of the fitted order",
    "queue": "the queue's own pairs (the labels the export trains on): accuracy of the fitted order",
}


@dataclass(frozen=True)
class SimConfig:
    """One simulation's knobs (the command line's)."""

    samples: int = 150
    """Samples (video or text-only prompts)."""
    responses: int = 5
    """Responses per sample; every pair of them is a queue pair or a held-out pair."""
    text_only: float = 0.3
    """Share of text-only samples (judge-scored)."""
    held_out: float = 0.3
    """Share of each sample's pairs held out (never shown)."""
    overlap: int = 1
    """Votes per pair: annotators taking turns at the queue (the app's default overlap is 1)."""
    scale: float = 6.0
    """Annotators' Bradley-Terry scale: a utility gap of 0.25 is voted right 82 % of the time at 6."""
    seeds: int = 5
    """Worlds simulated; the tables give medians."""
    every: int = 15
    """Fit and measure every this many votes."""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.responses < 3 or self.seeds < 1 or self.every < 1 or self.overlap < 1:
            raise ValueError("need samples >= 1, responses >= 3, seeds >= 1, every >= 1, overlap >= 1")
        if not 0 <= self.text_only <= 1 or not 0 < self.held_out < 1 or self.scale <= 0:
            raise ValueError("need 0 <= text_only <= 1, 0 < held_out < 1, scale > 0")


Pair = tuple[int, int, int]  # (sample, i, j): responses i and j of a sample


@dataclass
class World:
    """The hidden truth and what the store is given: utilities, scores, queue / held-out pairs, vote draws."""

    scale: float
    utility: np.ndarray  # (S, R) hidden utility per response
    prior_mean: np.ndarray  # (S, R) E[u | scores] x scale
    prior_var: np.ndarray  # (S, R) Var[u | scores] x scale^2
    scores: list[list[dict[str, float]]]  # per sample, per response: evaluator -> value
    video: list[bool]  # per sample: has a video (members) or is text-only (judge)
    queue: list[Pair]  # stored for the queue, i = side a (preferred by the scores)
    held_out: list[Pair]  # never shown
    draws: dict[Pair, np.ndarray]  # queue pair -> one uniform draw per vote it can get

    def a_wins(self, pair: Pair, k: int) -> bool:
        """Whether the k-th vote on a queue pair prefers its side a (Bradley-Terry on the hidden utilities)."""
        s, i, j = pair
        return bool(self.draws[pair][k] < 1 / (1 + math.exp(-self.scale * (self.utility[s, i] - self.utility[s, j]))))


def _observe(u: float, video: bool, rng: np.random.Generator) -> tuple[dict[str, float], list[float], list[float]]:
    """(stored scores, observations of u, their precisions) of one response."""
    if video:
        obs = [u + rng.normal(0, sd) for sd in MEMBER_NOISE]
        members = {f"clip-{k}": 25 + 2.5 * x for k, x in enumerate(obs)}
        return {**members, "ensemble": sum(members.values()) / len(members)}, obs, [sd**-2 for sd in MEMBER_NOISE]
    judge = float(min(10, max(0, round(5 + 1.5 * (u + rng.normal(0, JUDGE_NOISE))))))
    # Whole points: the rounding adds a uniform error of one point / 1.5 in utility units.
    return {"llm-judge": judge}, [(judge - 5) / 1.5], [1 / (JUDGE_NOISE**2 + (1 / 1.5) ** 2 / 12)]


def make_world(cfg: SimConfig, rng: np.random.Generator) -> World:
    utility = rng.standard_normal((cfg.samples, cfg.responses))
    video = [bool(rng.random() >= cfg.text_only) for _ in range(cfg.samples)]
    scores, mean, var = [], np.zeros_like(utility), np.zeros_like(utility)
    for s in range(cfg.samples):
        row = []
        for r in range(cfg.responses):
            stored, obs, weights = _observe(utility[s, r], video[s], rng)
            row.append(stored)
            precision = 1 + sum(weights)  # the Gaussian posterior of u ~ N(0, 1) given the observations
            mean[s, r] = sum(w * x for w, x in zip(weights, obs, strict=True)) / precision
            var[s, r] = 1 / precision
        scores.append(row)
    queue, held_out = [], []
    for s in range(cfg.samples):
        pairs = list(itertools.combinations(range(cfg.responses), 2))
        rng.shuffle(pairs)
        cut = len(pairs) - max(1, round(cfg.held_out * len(pairs)))
        queue += [(s, i, j) if mean[s, i] >= mean[s, j] else (s, j, i) for i, j in pairs[:cut]]
        held_out += [(s, i, j) for i, j in pairs[cut:]]
    draws = {pair: rng.random(cfg.overlap) for pair in queue}
    prior = (cfg.scale * mean, cfg.scale**2 * var)
    return World(cfg.scale, utility, *prior, scores, video, queue, held_out, draws)


@dataclass
class Seeded:
    """What the store holds of a world: pair id -> (sample, i, j) with i on side a; response id -> (sample, r)."""

    pairs: dict[int, Pair]
    responses: dict[int, tuple[int, int]]
    votes: dict[int, int] = field(default_factory=dict)  # pair id -> votes it has had


def seed_store(url: str, world: World) -> Seeded:
    """The world's samples, responses, scores and queue pairs, written through the store as the miner does."""
    from annotations import store
    from annotations.db import open_db

    engine = open_db(url)
    samples, ids = [], []
    for s, row in enumerate(world.scores):
        video = f"/sim/clip{s}.mp4" if world.video[s] else None
        samples.append(store.upsert_sample(engine, video, f"sample {s}", video_hash=f"h{s}" if video else None))
        beams = [store.NewResponse(f"response {s}.{r}", "model", model="sim", scores=sc) for r, sc in enumerate(row)]
        ids.append(store.add_responses(engine, samples[s], _task(world, s), beams))
    pairs = {}
    for s, i, j in world.queue:
        pairs[store.add_pair(engine, samples[s], _task(world, s), ids[s][i], ids[s][j])] = (s, i, j)
    engine.dispose()
    return Seeded(pairs, {rid: (s, r) for s, row in enumerate(ids) for r, rid in enumerate(row)})


def _task(world: World, s: int) -> int:
    return 1 if world.video[s] else 3


def annotate(url: str, world: World, seeded: Seeded, order: str, votes: int, overlap: int) -> None:
    """``votes`` votes from the queue in the project's order, by ``overlap`` annotators taking turns."""
    from annotations import store
    from annotations.db import make_engine

    engine = make_engine(url)
    store.set_queue_order(engine, order, by="bench")
    names = [f"sim{k}" for k in range(overlap)]
    done, idle = 0, 0
    while done < votes and idle < overlap:  # stop when every annotator found the queue empty in a row
        name = names[(done + idle) % overlap]
        view = store.next_pair(engine, name, overlap=overlap)
        if view is None:
            idle += 1
            continue
        pair = seeded.pairs[view.pair_id]
        k = seeded.votes.get(view.pair_id, 0)
        seeded.votes[view.pair_id] = k + 1
        a_left = seeded.responses[view.left_response_id] == (pair[0], pair[1])
        choice = "a_better" if world.a_wins(pair, k) == a_left else "b_better"  # shown sides: A = left
        store.record_judgement(engine, view.pair_id, name, choice, view.left_response_id, 1.0)
        done, idle = done + 1, 0
    engine.dispose()


def stored_votes(path: Path, pairs: dict[int, Pair]) -> list[Pair]:
    """(sample, winner, loser) of every stored vote, read back from the database (choices are stored
    normalised to the pair's a/b orientation)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT pair_id, choice FROM judgement ORDER BY id").fetchall()
    out = []
    for pid, choice in rows:
        s, i, j = pairs[pid]
        out.append((s, i, j) if choice == "a_better" else (s, j, i))
    return out


def served_uncertainty(path: Path, first: int) -> float:
    """Mean stored uncertainty of the first ``first`` pairs voted on: what the order served first."""
    with sqlite3.connect(path) as conn:
        query = "SELECT AVG(p.uncertainty) FROM (SELECT pair_id FROM judgement ORDER BY id LIMIT ?) j"
        return float(conn.execute(query + " JOIN pair p ON p.id = j.pair_id", (first,)).fetchone()[0])


def fit(world: World, votes: list[Pair], iters: int = 60) -> np.ndarray:
    """MAP Bradley-Terry strengths (S, R) under the evaluator prior. Newton steps with the logistic curvature
    bounded by 1/4 (Boehning's bound): the bounded Hessian is fixed, so it is inverted once, and every step
    raises the posterior (plain Newton overshoots when the votes contradict a confident prior)."""
    theta = world.prior_mean.copy()
    if not votes:
        return theta
    s, w, lose = (np.array(col) for col in zip(*votes, strict=True))
    n = theta.shape[1]
    prec = 1 / world.prior_var
    bound = np.zeros((*theta.shape, n))  # (S, R, R): prior precision + 1/4 (e_w - e_l)(e_w - e_l)^T per vote
    bound[:, np.arange(n), np.arange(n)] = prec
    for a, b, sign in ((w, w, 1), (lose, lose, 1), (w, lose, -1), (lose, w, -1)):
        np.add.at(bound, (s, a, b), sign * 0.25)
    step = np.linalg.inv(bound)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(theta[s, w] - theta[s, lose])))  # P(winner beats loser)
        grad = -prec * (theta - world.prior_mean)
        np.add.at(grad, (s, w), 1 - p)
        np.add.at(grad, (s, lose), -(1 - p))
        theta = theta + (step @ grad[..., None])[..., 0]
    return theta


def accuracy(world: World, theta: np.ndarray, pairs: list[Pair]) -> float:
    """Share of ``pairs`` whose fitted order matches the hidden one (a fitted tie counts half)."""
    s, i, j = (np.array(col) for col in zip(*pairs, strict=True))
    truth = np.sign(world.utility[s, i] - world.utility[s, j])
    fitted = np.sign(theta[s, i] - theta[s, j])
    return float(np.mean(np.where(fitted == 0, 0.5, fitted == truth)))


def measure(world: World, votes: list[Pair]) -> dict[str, float]:
    theta = fit(world, votes)
    return {"votes": len(votes), **{m: accuracy(world, theta, getattr(world, m)) for m in METRICS}}


def curve(world: World, cfg: SimConfig, order: str, path: Path) -> dict[str, object]:
    """Accuracies after 0, every, 2 every, ... votes, until every queue pair has its ``overlap`` votes."""
    seeded = seed_store(f"sqlite:///{path}", world)
    points = [measure(world, [])]
    while points[-1]["votes"] < cfg.overlap * len(seeded.pairs):
        annotate(f"sqlite:///{path}", world, seeded, order, cfg.every, cfg.overlap)
        points.append(measure(world, stored_votes(path, seeded.pairs)))
    return {"points": points, "served_uncertainty": served_uncertainty(path, max(1, len(seeded.pairs) // 10))}


def votes_needed(points: list[dict[str, float]], metric: str, level: float) -> int | None:
    return next((int(p["votes"]) for p in points if p[metric] >= level), None)


def run(cfg: SimConfig) -> dict[str, object]:
    per_seed = []
    with tempfile.TemporaryDirectory(prefix="bench_active_", dir=_fast_dir()) as tmp:
        for seed in range(cfg.seeds):
            world = make_world(cfg, np.random.default_rng(seed))
            curves = {order: curve(world, cfg, order, Path(tmp) / f"{order}-{seed}.db") for order in ORDERS}
            per_seed.append({"seed": seed, "queue_pairs": len(world.queue), "held_out": len(world.held_out), **curves})
    served = {o: statistics.median(r[o]["served_uncertainty"] for r in per_seed) for o in ORDERS}
    return {"per_seed": per_seed, "served_uncertainty": served, "table": {m: summary(per_seed, m) for m in METRICS}}


def summary(per_seed: list[dict], metric: str) -> dict[str, dict[str, object]]:
    """Per order: median prior-only and all-voted accuracy, median votes to each level, seeds that reached it."""
    table = {}
    for order in ORDERS:
        curves = [r[order]["points"] for r in per_seed]
        needed = {f"{lvl:.0%}": [votes_needed(c, metric, lvl) for c in curves] for lvl in LEVELS}
        table[order] = {
            "prior_accuracy": statistics.median(c[0][metric] for c in curves),
            "final_accuracy": statistics.median(c[-1][metric] for c in curves),
            "votes_needed": {key: _median(v) for key, v in needed.items()},
            "reached": {key: sum(x is not None for x in v) for key, v in needed.items()},
        }
    return table


def _median(values: list[int | None]) -> float | None:
    """Median over seeds, a seed that never reached the level ranked last (None when the median one never did)."""
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    n = len(ranked)
    if n % 2:
        return ranked[n // 2]
    lo, hi = ranked[n // 2 - 1], ranked[n // 2]
    return None if lo is None or hi is None else (lo + hi) / 2


def _fast_dir() -> str | None:
    """RAM-backed /dev/shm when there is one: the queue's fsyncs are not what this measures."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report(result: dict[str, object], cfg: SimConfig, seconds: float) -> str:
    first = result["per_seed"][0]  # type: ignore[index]
    served = result["served_uncertainty"]
    lines = [
        f"{cfg.samples} samples x {cfg.responses} responses ({cfg.text_only:.0%} text-only): "
        f"{first['queue_pairs']} queue pairs x {cfg.overlap} vote(s), {first['held_out']} held-out pairs; "
        f"annotators Bradley-Terry at scale {cfg.scale:g}; medians over {cfg.seeds} seeds; {seconds:.0f} s",
        "mean stored uncertainty of the first 10 % of pairs voted on: "
        + ", ".join(f"{o} {served[o]:.3f}" for o in ORDERS),  # type: ignore[index]
    ]
    for metric in METRICS:
        lines += ["", TITLES[metric], *_table(result["table"][metric], cfg.seeds)]  # type: ignore[index]
    return "\n".join(lines)


def _table(table: dict, seeds: int) -> list[str]:
    lines = [
        "| order | prior only | all voted | votes to 80 % | votes to 90 % | votes to 95 % |",
        "|---|---|---|---|---|---|",
    ]
    for order in ORDERS:
        row = table[order]
        needed = " | ".join(_fmt(row["votes_needed"][f"{lvl:.0%}"]) for lvl in LEVELS)
        lines.append(f"| {order} | {row['prior_accuracy']:.3f} | {row['final_accuracy']:.3f} | {needed} |")
    for lvl in LEVELS:
        key = f"{lvl:.0%}"
        fifo, act = table["fifo"]["votes_needed"][key], table["active"]["votes_needed"][key]
        reached = f"(reached in {table['fifo']['reached'][key]} / {table['active']['reached'][key]} of {seeds} seeds)"
        if fifo is not None and act:
            lines.append(f"ratio votes fifo / active at {key}: {fifo / act:.2f} {reached}")
        else:
            lines.append(f"ratio votes fifo / active at {key}: n/a (fifo {_fmt(fifo)}, active {_fmt(act)}) {reached}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SimConfig()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--json", action="store_true")
    args = vars(parser.parse_args(argv))
    as_json = args.pop("json")
    try:
        cfg = SimConfig(**args)
    except ValueError as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    result = run(cfg)
    seconds = time.perf_counter() - start
    if as_json:
        out = {k: result[k] for k in ("table", "served_uncertainty")}
        print(json.dumps({**out, "seconds": seconds, "config": asdict(cfg)}, indent=2))
    else:
        print(report(result, cfg, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
