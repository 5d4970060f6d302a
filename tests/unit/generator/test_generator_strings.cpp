// Stop strings, banned strings (rewind and draw again), min_new_tokens blocking and logprobs: the generator over the
// deterministic fake runner with scripted text, and RunnerStepRunner over a model of fixed logits for exact
// log-probabilities.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "event_log.h"
#include "fake_step_runner.h"
#include "generator/generator.h"
#include "generator/runner_step.h"
#include "piece_vocab.h"

namespace exl::generator {
namespace {

using testing::EventLog;
using testing::FakeStepRunner;
using testing::PieceVocab;

using Script = std::function<std::vector<int32_t>(std::span<const int32_t>)>;

// The fake's preferred tokens by generated position: prefs[g] at position g, then `filler`.
Script by_position(size_t prompt_len, std::vector<std::vector<int32_t>> prefs, int32_t filler) {
  return [prompt_len, prefs = std::move(prefs), filler](std::span<const int32_t> context) {
    const size_t g = context.size() - prompt_len;
    return g < prefs.size() ? prefs[g] : std::vector<int32_t>{filler};
  };
}

void run(Generator& gen, EventLog& log, int64_t max_steps = 10000) {
  for (int64_t i = 0; i < max_steps && gen.step(); ++i) log.add(gen.take_events());
  log.add(gen.take_events());
  ASSERT_TRUE(gen.idle()) << "not idle after " << max_steps << " steps";
}

void expect_pool_empty(const Generator& gen) {
  const PoolStats s = gen.pool().stats();
  EXPECT_EQ(s.used_pages, 0);
  EXPECT_EQ(s.free_pages + s.cached_pages, s.num_pages);
  gen.pool().check_invariants();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---------------------------------------------------------------------------------------------------------------
// Stop strings

struct StopCase {
  const char* name;
  std::vector<std::string> pieces;  // the scripted output, one piece per token
  std::vector<std::string> stops;
  int64_t min_new;
  std::string text;            // expected streamed text
  size_t tokens;               // expected tokens: through the one that completed the stop string
  std::string stop_string;     // expected; empty: no stop, the job ends by length
};

TEST(StopStrings, EndTheTextBeforeTheStopStringWhereverItFalls) {
  const std::vector<StopCase> cases = {
      {"one token", {"Hello", " world", "###", " more"}, {"###"}, 0, "Hello world", 3, "###"},
      {"two tokens", {"Hello", "##", "#", " more"}, {"###"}, 0, "Hello", 3, "###"},
      {"three tokens", {"Hello", "#", "#", "#", " more"}, {"###"}, 0, "Hello", 4, "###"},
      {"starts mid-token", {"ab", "c#", "##x", " more"}, {"###"}, 0, "abc", 3, "###"},
      {"ends mid-token", {"xx##", "#yy", " more"}, {"###"}, 0, "xx", 2, "###"},
      {"overlaps a held prefix", {"ab", "ca", "bc", "d", " more"}, {"abcd"}, 0, "abc", 4, "abcd"},
      {"the earliest start wins", {"ab", "cd", " more"}, {"cd", "bcd"}, 0, "a", 2, "bcd"},
      {"the first token", {"###", "x"}, {"###"}, 0, "", 1, "###"},
      {"a false alarm is released", {"##", "x", "#", "!"}, {"###"}, 0, "##x#!", 4, ""},
      {"a prefix of the stop at the end", {"a", "b", "##"}, {"###"}, 0, "ab##", 3, ""},
      {"before min_new_tokens it is text", {"##", "a", "##", "b"}, {"##"}, 2, "##a", 3, "##"},
      {"completing before min_new_tokens", {"#", "##", "x"}, {"###"}, 2, "###x", 3, ""},
  };
  for (const StopCase& c : cases) {
    SCOPED_TRACE(c.name);
    PieceVocab v;
    const int32_t bos = v.id("<s>"), dot = v.id(".");
    const std::vector<int32_t> script = v.ids(c.pieces);
    FakeStepRunner fake({.page_size = 4, .num_pages = 16, .vocab_size = v.size()});
    std::vector<std::vector<int32_t>> prefs;
    for (int32_t t : script) prefs.push_back({t});
    fake.script = by_position(1, prefs, dot);
    Generator gen(fake);
    JobParams p;
    p.input_ids = {bos};
    p.max_new_tokens = static_cast<int64_t>(script.size());
    p.stop_strings = c.stops;
    p.min_new_tokens = c.min_new;
    p.text = v.decoder();
    const uint64_t id = gen.enqueue(p);
    EventLog log;
    run(gen, log);
    const auto& r = log[id];
    EXPECT_EQ(r.text, c.text);
    EXPECT_EQ(r.tokens, std::vector<int32_t>(script.begin(), script.begin() + static_cast<int64_t>(c.tokens)));
    EXPECT_EQ(r.final.generated_tokens, static_cast<int64_t>(c.tokens));
    EXPECT_EQ(r.final.reason, c.stop_string.empty() ? FinishReason::kLength : FinishReason::kStop);
    EXPECT_EQ(r.final.stop_string, c.stop_string);
    // Streaming never takes text back and never runs ahead of the cut: every prefix streamed is a prefix of the
    // expected text, and every event but the last carries exactly the text of its tokens.
    std::string streamed;
    for (const JobEvent& e : r.events) {
      streamed += e.text;
      EXPECT_EQ(c.text.substr(0, streamed.size()), streamed);
      if (!e.finished) {
        EXPECT_EQ(e.text, v.text(e.tokens));
      }
    }
    EXPECT_TRUE(fake.violations().empty());
    expect_pool_empty(gen);
  }
}

TEST(StopStrings, HeldTextGoesOutWithItsTokensInOrder) {
  PieceVocab v;
  const int32_t bos = v.id("<s>");
  const auto script = v.ids({"Hello", "##", "x", "#", "#", "!"});
  FakeStepRunner fake({.vocab_size = v.size()});
  std::vector<std::vector<int32_t>> prefs;
  for (int32_t t : script) prefs.push_back({t});
  fake.script = by_position(1, prefs, bos);
  Generator gen(fake);
  JobParams p;
  p.input_ids = {bos};
  p.max_new_tokens = 6;
  p.stop_strings = {"###"};
  p.text = v.decoder();
  const uint64_t id = gen.enqueue(p);
  EventLog log;
  run(gen, log);
  // No event while "##" or "#", "##" might still become "###".
  const auto& events = log[id].events;
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].tokens, v.ids({"Hello"}));
  EXPECT_EQ(events[0].text, "Hello");
  EXPECT_EQ(events[1].tokens, v.ids({"##", "x"}));
  EXPECT_EQ(events[1].text, "##x");
  EXPECT_EQ(events[2].tokens, v.ids({"#", "#", "!"}));
  EXPECT_EQ(events[2].text, "##!");
  EXPECT_TRUE(events[2].finished);
  EXPECT_EQ(events[2].reason, FinishReason::kLength);
}

TEST(StopStrings, TextFlushedAtTheEndIsCheckedToo) {
  PieceVocab v;
  const int32_t bos = v.id("<s>");
  const int32_t a = v.id("a");
  const int32_t hash = v.add("#", /*glue=*/true);  // its text only comes with the next token, or the flush
  FakeStepRunner fake({.vocab_size = v.size()});
  fake.script = by_position(1, {{a}, {hash}}, bos);
  Generator gen(fake);
  JobParams p;
  p.input_ids = {bos};
  p.max_new_tokens = 2;
  p.stop_strings = {"a#"};
  p.text = v.decoder();
  const uint64_t id = gen.enqueue(p);
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log[id].tokens, (std::vector<int32_t>{a, hash}));
  EXPECT_EQ(log[id].text, "");
  EXPECT_EQ(log[id].final.reason, FinishReason::kStop);
  EXPECT_EQ(log[id].final.stop_string, "a#");
}

TEST(StopStrings, AStopTokenStillEndsTheJobWithItsText) {
  PieceVocab v;
  const int32_t bos = v.id("<s>");
  const auto script = v.ids({"a", "#", "</s>", "#"});
  FakeStepRunner fake({.vocab_size = v.size()});
  std::vector<std::vector<int32_t>> prefs;
  for (int32_t t : script) prefs.push_back({t});
  fake.script = by_position(1, prefs, bos);
  Generator gen(fake);
  JobParams p;
  p.input_ids = {bos};
  p.max_new_tokens = 4;
  p.stop_strings = {"##"};
  p.stop_tokens = {v.id("</s>")};
  p.text = v.decoder();
  const uint64_t id = gen.enqueue(p);
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log[id].tokens, (std::vector<int32_t>(script.begin(), script.begin() + 3)));
  EXPECT_EQ(log[id].text, "a#</s>");  // the held "#" goes out with the stop token
  EXPECT_EQ(log[id].final.reason, FinishReason::kStop);
  EXPECT_EQ(log[id].final.stop_string, "");
}

// ---------------------------------------------------------------------------------------------------------------
// Banned strings

struct BannedRun {
  EventLog log;
  uint64_t id = 0;
  std::vector<std::vector<int32_t>> blocked;  // per draw
  int64_t rewinds = 0;
};

BannedRun run_scripted(PieceVocab& v, const std::vector<int32_t>& prompt, std::vector<std::vector<int32_t>> prefs,
                       int32_t filler, int64_t max_new, std::vector<std::string> banned,
                       std::vector<std::string> stops = {}, int top_logprobs = 0, int64_t page_size = 4) {
  FakeStepRunner fake({.page_size = page_size, .num_pages = 32, .vocab_size = v.size()});
  fake.script = by_position(prompt.size(), std::move(prefs), filler);
  Generator gen(fake);
  JobParams p;
  p.input_ids = prompt;
  p.max_new_tokens = max_new;
  p.banned_strings = std::move(banned);
  p.stop_strings = std::move(stops);
  p.top_logprobs = top_logprobs;
  p.text = v.decoder();
  BannedRun out;
  out.id = gen.enqueue(p);
  run(gen, out.log);
  EXPECT_TRUE(fake.violations().empty());
  expect_pool_empty(gen);
  out.blocked = fake.blocked_seen();
  out.rewinds = gen.stats().rewinds;
  return out;
}

TEST(BannedStrings, RewindToWhereTheStringBeganAndDrawAgainWithThatTokenBlocked) {
  PieceVocab v;
  const int32_t bos = v.id("<s>"), dot = v.id(".");
  const int32_t hello = v.id("Hello"), wor = v.id(" wor"), there = v.id(" there"), ld = v.id("ld"),
                bang = v.id("!");
  // " wor" + "ld" makes " world": banned (case-insensitively) from the "wor" in " wor" on.
  BannedRun banned = run_scripted(v, {bos}, {{hello}, {wor, there}, {ld}, {bang}}, dot, 4, {"WORLD"});
  const auto& r = banned.log[banned.id];
  EXPECT_EQ(r.final.reason, FinishReason::kLength);
  EXPECT_EQ(r.final.rewinds, 1);
  EXPECT_EQ(banned.rewinds, 1);
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{hello, there, ld, bang}));
  EXPECT_EQ(r.text, "Hello thereld!");
  // The same as a run in which " wor" was blocked at that position from the start.
  BannedRun plain = run_scripted(v, {bos}, {{hello}, {there}, {ld}, {bang}}, dot, 4, {"WORLD"});
  EXPECT_EQ(plain.log[plain.id].tokens, r.tokens);
  EXPECT_EQ(plain.log[plain.id].final.rewinds, 0);
  // Draws: Hello, " wor", "ld" (rewind), then position 1 again with " wor" blocked, "ld", "!".
  const std::vector<std::vector<int32_t>> expected_blocked = {{}, {}, {}, {wor}, {}, {}};
  EXPECT_EQ(banned.blocked, expected_blocked);
  // Nothing of the banned string was ever streamed, and "Hello" went out before it was ambiguous.
  EXPECT_EQ(r.events.front().text, "Hello");
  for (const JobEvent& e : r.events) EXPECT_EQ(lower(e.text).find("wor"), std::string::npos);
}

TEST(BannedStrings, BlockedTokensAccumulateAtThePositionAndClearBehindIt) {
  PieceVocab v;
  const int32_t bos = v.id("<s>"), dot = v.id(".");
  const int32_t x = v.id("x"), a1 = v.id("a"), a2 = v.id("A"), a3 = v.id("-a"), b = v.id("b");
  // Every "a"-like token at position 1 is followed by "b": banned "ab" three times, then "b" itself.
  BannedRun run = run_scripted(v, {bos}, {{x}, {a1, a2, a3, b}, {b}, {dot}}, dot, 4, {"ab"});
  const auto& r = run.log[run.id];
  EXPECT_EQ(r.final.reason, FinishReason::kLength);
  EXPECT_EQ(r.final.rewinds, 3);
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{x, b, b, dot}));
  std::vector<int32_t> tried = {a1, a2, a3};
  std::vector<std::vector<int32_t>> expected = {{}};
  for (size_t i = 0; i < 3; ++i) {
    std::vector<int32_t> at(tried.begin(), tried.begin() + static_cast<int64_t>(i));
    std::ranges::sort(at);
    expected.push_back(at);  // position 1
    expected.push_back({});  // position 2: nothing blocked there
  }
  std::ranges::sort(tried);
  expected.push_back(tried);
  expected.push_back({});
  expected.push_back({});
  EXPECT_EQ(run.blocked, expected);
}

TEST(BannedStrings, ARewindStartsAtATokenThatGaveNoTextYet) {
  PieceVocab v;
  const int32_t bos = v.id("<s>"), dot = v.id(".");
  const int32_t x = v.id("x"), y = v.id("y"), three = v.id("3"), bang = v.id("!");
  const int32_t open = v.add("<", /*glue=*/true);  // like the first byte of a UTF-8 sequence
  auto resets = std::make_shared<int>(0);
  FakeStepRunner fake({.vocab_size = v.size()});
  fake.script = by_position(1, {{x}, {open, y}, {three}, {bang}}, dot);
  Generator gen(fake);
  JobParams p;
  p.input_ids = {bos};
  p.max_new_tokens = 4;
  p.banned_strings = {"<3"};
  p.text = v.decoder(resets);
  const uint64_t id = gen.enqueue(p);
  EventLog log;
  run(gen, log);
  // "<" gave no text, "3" gave "<3": the rewind goes back to "<", not to "3", and the decoder forgets the "<".
  EXPECT_EQ(log[id].tokens, (std::vector<int32_t>{x, y, three, bang}));
  EXPECT_EQ(log[id].text, "xy3!");
  EXPECT_EQ(log[id].final.rewinds, 1);
  EXPECT_EQ(*resets, 1);
  EXPECT_TRUE(fake.violations().empty());
}

TEST(BannedStrings, RewindsReachIntoCommittedAndSharedPages) {
  // Two jobs share a two-page prompt (page size 4); both make "ab"+"cd"+"e" = "abcde" right away, banned: each
  // rewinds to its first generated token, so the last prompt token is computed again. Its page is committed and
  // shared, so the job must recompute that page into a private one instead of writing into it.
  PieceVocab v;
  const int32_t dot = v.id(".");
  const int32_t ab = v.id("ab"), cd = v.id("cd"), e = v.id("e"), z = v.id("z");
  const int32_t a = v.id("a"), b = v.id("b"), c = v.id("c"), d = v.id("d");
  std::vector<int32_t> prompt;
  for (int i = 0; i < 8; ++i) prompt.push_back(v.id("p" + std::to_string(i)));
  FakeStepRunner fake({.page_size = 4, .num_pages = 16, .vocab_size = v.size()});
  fake.script = by_position(prompt.size(), {{ab, z}, {cd}, {e}, {dot}, {dot}}, dot);
  Generator gen(fake);
  EventLog log;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 2; ++i) {
    JobParams p;
    p.input_ids = prompt;
    p.max_new_tokens = 5;
    p.banned_strings = {"abcde"};
    p.text = v.decoder();
    ids.push_back(gen.enqueue(p));
  }
  run(gen, log);
  for (uint64_t id : ids) {
    EXPECT_EQ(log[id].tokens, (std::vector<int32_t>{z, cd, e, dot, dot})) << "job " << id;
    EXPECT_EQ(log[id].final.rewinds, 1);
    EXPECT_EQ(log[id].final.reason, FinishReason::kLength);
  }
  EXPECT_TRUE(fake.violations().empty());
  expect_pool_empty(gen);
  // A banned string of five tokens across a page boundary (prompt of 6: positions 6..10).
  prompt.resize(6);
  fake.script = by_position(prompt.size(), {{a, z}, {b}, {c}, {d}, {e}, {dot}}, dot);
  JobParams p;
  p.input_ids = prompt;
  p.max_new_tokens = 6;
  p.banned_strings = {"abcde"};
  p.text = v.decoder();
  const uint64_t id = gen.enqueue(p);
  run(gen, log);
  EXPECT_EQ(log[id].text, "zbcde.");
  EXPECT_EQ(log[id].final.rewinds, 1);
  EXPECT_TRUE(fake.violations().empty());
  expect_pool_empty(gen);
}

TEST(BannedStrings, TextBeforeARewindCannotJoinTheTextAfterIt) {
  PieceVocab v;
  const int32_t bos = v.id("<s>"), dot = v.id(".");
  const int32_t a = v.id("A"), z = v.id("z"), c = v.id("c"), b = v.id("b"), d = v.id("d");
  // "A" then "c": "Ac" begins no banned string, but "c" may begin "cd" and be rewound, and "A" + "b" is banned.
  // So "A" stays held while "c" is, and the rewinds go: "cd" -> back to "c"; "Ab" -> back to "A"; "cd" again.
  BannedRun run = run_scripted(v, {bos}, {{a, z}, {c, b}, {d, dot}}, dot, 3, {"ab", "cd"});
  const auto& r = run.log[run.id];
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{z, b, d}));
  EXPECT_EQ(r.text, "zbd");
  EXPECT_EQ(r.final.rewinds, 3);
  for (const JobEvent& e : r.events) EXPECT_EQ(e.text.find('A'), std::string::npos) << e.text;
  // Draws (blocked): A c d | b (c) | z (A) c d | b (c) d.
  const std::vector<std::vector<int32_t>> expected = {{}, {}, {}, {c}, {a}, {}, {}, {c}, {}};
  EXPECT_EQ(run.blocked, expected);
}

TEST(BannedStrings, AJobWithEveryContinuationBannedEndsWithAnError) {
  PieceVocab v;
  const int32_t bos = v.id("<s>");
  v.id("x");
  v.id("y");
  BannedRun run = run_scripted(v, {bos}, {}, bos, 4, {"x", "y", "<S>"});
  const auto& r = run.log[run.id];
  EXPECT_EQ(r.final.reason, FinishReason::kError);
  EXPECT_NE(r.final.error.find("every token of the vocabulary (3) is blocked at generated position 0"),
            std::string::npos)
      << r.final.error;
  EXPECT_EQ(r.final.rewinds, 3);
  EXPECT_TRUE(r.tokens.empty());
  EXPECT_TRUE(r.text.empty());
}

TEST(BannedStrings, StopStringsAndBannedStringsTogether) {
  PieceVocab v;
  const int32_t bos = v.id("<s>"), dot = v.id(".");
  const int32_t x = v.id("x"), ba = v.id("ba"), d = v.id("d"), good = v.id("good"), end = v.id("END");
  // "ba" may begin both the banned "bad" and the stop string "bax"; "d" completes the banned one: rewind to "ba".
  BannedRun run = run_scripted(v, {bos}, {{x}, {ba, good}, {d}, {end}}, dot, 5, {"bad"}, {"END", "bax"});
  const auto& r = run.log[run.id];
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{x, good, d, end}));
  EXPECT_EQ(r.text, "xgoodd");
  EXPECT_EQ(r.final.reason, FinishReason::kStop);
  EXPECT_EQ(r.final.stop_string, "END");
  EXPECT_EQ(r.final.rewinds, 1);
}

// Random text over a small vocabulary with sampling: many rewinds, the same tokens whatever the batching, the
// page budget (preemption) or the prefix cache, and never a banned string in the text.
TEST(BannedStrings, SampledRewindsAreDeterministicUnderPreemptionAndBatching) {
  PieceVocab v;
  const int32_t bos = v.id("<s>");
  for (const char* piece : {"a", "b", "c", "d", "e", "f", "ab", "ba", " ", "cd", "A", "B", "fff"}) v.id(piece);
  struct Config {
    int64_t num_pages, max_tokens_per_step;
    bool prefix_caching;
  };
  std::vector<std::map<uint64_t, testing::JobRecord>> results;
  int64_t preemptions = 0, rewinds = 0;
  for (const Config& cfg : {Config{64, 2048, true}, Config{12, 7, true}, Config{12, 5, false}}) {
    FakeStepRunner fake({.page_size = 4, .num_pages = cfg.num_pages, .vocab_size = v.size()});
    Generator gen(fake, {.max_tokens_per_step = cfg.max_tokens_per_step, .prefix_caching = cfg.prefix_caching});
    for (int i = 0; i < 24; ++i) {
      JobParams p;
      p.input_ids = {bos, static_cast<int32_t>(1 + i % 5), static_cast<int32_t>(1 + i % 3)};
      p.max_new_tokens = 20;
      p.sampling.temperature = 1.0f;
      p.sampling.seed = 100 + static_cast<uint64_t>(i);
      p.banned_strings = {"AB", "cd"};
      p.stop_strings = {"ee"};
      p.top_logprobs = i % 2 == 0 ? 2 : 0;
      p.text = v.decoder();
      gen.enqueue(p);
    }
    EventLog log;
    run(gen, log);
    EXPECT_TRUE(fake.violations().empty());
    expect_pool_empty(gen);
    preemptions += gen.stats().preemptions;
    rewinds += gen.stats().rewinds;
    for (const auto& [id, r] : log.jobs()) {
      EXPECT_EQ(r.finishes, 1);
      EXPECT_NE(r.final.reason, FinishReason::kError) << r.final.error;
      EXPECT_EQ(lower(r.text).find("ab"), std::string::npos) << r.text;
      EXPECT_EQ(lower(r.text).find("cd"), std::string::npos) << r.text;
      EXPECT_EQ(r.final.generated_tokens, static_cast<int64_t>(r.tokens.size()));
      const std::string full = v.text(r.tokens);
      if (r.final.stop_string.empty()) {
        EXPECT_EQ(r.text, full);
      } else {
        EXPECT_EQ(r.text, full.substr(0, full.find("ee")));
      }
      EXPECT_EQ(r.logprobs.size(), id % 2 == 1 ? r.tokens.size() : 0u);  // ids count from 1: even i, odd id
    }
    results.push_back(log.jobs());
  }
  EXPECT_GT(preemptions, 0);
  EXPECT_GT(rewinds, 20);
  for (size_t c = 1; c < results.size(); ++c) {
    for (const auto& [id, r] : results[0]) {
      EXPECT_EQ(results[c].at(id).tokens, r.tokens) << "config " << c << " job " << id;
      EXPECT_EQ(results[c].at(id).text, r.text) << "config " << c << " job " << id;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Logprobs

TEST(Logprobs, TravelWithTheirTokensThroughHoldsAndRewinds) {
  PieceVocab v;
  const int32_t bos = v.id("<s>"), dot = v.id(".");
  const int32_t hello = v.id("Hello"), wor = v.id(" wor"), there = v.id(" there"), ld = v.id("ld");
  BannedRun run = run_scripted(v, {bos}, {{hello}, {wor, there}, {ld}}, dot, 4, {"world"}, {"ld."}, 3);
  const auto& r = run.log[run.id];
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{hello, there, ld, dot}));
  EXPECT_EQ(r.final.stop_string, "ld.");
  ASSERT_EQ(r.logprobs.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r.logprobs[i].token, r.tokens[i]);
    EXPECT_DOUBLE_EQ(r.logprobs[i].logprob, -0.25);
    ASSERT_EQ(r.logprobs[i].top.size(), 3u);
    EXPECT_EQ(r.logprobs[i].top[0].token, r.tokens[i]);
  }
  // At the rewound position " wor" was blocked, so it is not among the alternatives.
  for (const TokenLogprob& t : r.logprobs[1].top) EXPECT_NE(t.token, wor);
}

// A runner that reports no logprobs: jobs that asked for them fail, the others go on.
class NoLogprobsRunner final : public StepRunner {
 public:
  explicit NoLogprobsRunner(StepRunner& inner) : inner_(inner) {}
  int64_t page_size() const override { return inner_.page_size(); }
  int64_t num_pages() const override { return inner_.num_pages(); }
  int64_t max_seq_len() const override { return inner_.max_seq_len(); }
  int64_t vocab_size() const override { return inner_.vocab_size(); }
  void step(std::span<const StepSequence> seqs, std::vector<int32_t>* sampled) override {
    std::vector<StepSequence> copy(seqs.begin(), seqs.end());
    for (auto& s : copy) s.output = nullptr;
    inner_.step(copy, sampled);
  }

 private:
  StepRunner& inner_;
};

TEST(Logprobs, ARunnerWithoutThemFailsOnlyTheJobsThatAskedForThem) {
  FakeStepRunner fake;
  NoLogprobsRunner runner(fake);
  Generator gen(runner);
  JobParams p;
  p.input_ids = {1, 2, 3};
  p.max_new_tokens = 3;
  const uint64_t plain = gen.enqueue(p);
  p.top_logprobs = 2;
  const uint64_t asks = gen.enqueue(p);
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log[plain].final.reason, FinishReason::kLength);
  EXPECT_EQ(log[asks].final.reason, FinishReason::kError);
  EXPECT_NE(log[asks].final.error.find("top_logprobs = 2"), std::string::npos) << log[asks].final.error;
}

// A model whose every row of logits is the same small vector.
class FixedLogitsRunner final : public model::Runner {
 public:
  explicit FixedLogitsRunner(std::vector<float> row) : row_(std::move(row)) {
    config_.vocab_size = static_cast<int64_t>(row_.size());
    config_.max_position_embeddings = 64;
  }
  const io::ModelConfig& config() const override { return config_; }
  std::string backend_name() const override { return "fixed"; }
  int64_t page_size() const override { return 4; }
  int64_t num_pages() const override { return 16; }
  void forward(std::span<const model::SequenceStep> seqs, model::LogitsFor which,
               std::vector<float>* logits) override {
    EXPECT_EQ(which, model::LogitsFor::kLastToken);
    logits->clear();
    for (size_t i = 0; i < seqs.size(); ++i) logits->insert(logits->end(), row_.begin(), row_.end());
  }
  model::DecodeStats decode(const model::DecodeRequest&, const model::TokenCallback&) override {
    fail(ErrorKind::kUnsupported, "FixedLogitsRunner: decode is not used by the generator");
  }

 private:
  std::vector<float> row_;
  io::ModelConfig config_;
};

// Logits [2, 1, 0.5, -1, 1]; each case is computed by hand below.
TEST(Logprobs, EqualAHandComputationOnASmallVocabulary) {
  FixedLogitsRunner model({2.0f, 1.0f, 0.5f, -1.0f, 1.0f});
  RunnerStepRunner steps(model);
  Generator gen(steps);
  auto make = [](int top) {
    JobParams p;
    p.input_ids = {0, 1};
    p.max_new_tokens = 2;
    p.top_logprobs = top;
    return p;
  };
  // Greedy: the distribution is one-hot at token 0.
  const uint64_t greedy = gen.enqueue(make(5));
  // Temperature 0.5, top-k 3: tokens 0, 1, 4 (1 and 4 tie; both kept), p ~ exp((l - 2) / 0.5) = 1, e^-2, e^-2.
  JobParams t = make(5);
  t.sampling = {.temperature = 0.5f, .top_k = 3, .top_p = 1.0f, .seed = 3};
  const uint64_t tempered = gen.enqueue(t);
  // min_new_tokens 1 with stop token 0: the first draw masks 0, so p ~ exp((l - 1) / 0.5) over 1, 2, 3, 4.
  JobParams b = make(2);
  b.sampling = {.temperature = 0.5f, .top_k = 0, .top_p = 1.0f, .seed = 4};
  b.min_new_tokens = 1;
  b.stop_tokens = {0};
  b.max_new_tokens = 1;
  const uint64_t blocked = gen.enqueue(b);
  // The chain: temperature 2 then top-k 2: softmax(l / 2) cut to tokens 0 and 1 (1 before 4 on the tie).
  JobParams c = make(3);
  sampling::SamplerSettings st;
  st.temperature = 2.0f;
  st.top_k = 2;
  st.seed = 5;
  c.sampler = st;
  const uint64_t chain = gen.enqueue(c);
  EventLog log;
  run(gen, log);

  ASSERT_EQ(log[greedy].logprobs.size(), 2u);
  for (const auto& lp : log[greedy].logprobs) {
    EXPECT_EQ(lp.token, 0);
    EXPECT_EQ(lp.logprob, 0.0);
    ASSERT_EQ(lp.top.size(), 1u);
    EXPECT_EQ(lp.top[0].token, 0);
    EXPECT_EQ(lp.top[0].logprob, 0.0);
  }

  const double s = 1.0 + 2.0 * std::exp(-2.0);
  const std::vector<TokenLogprob> tempered_top = {{0, -std::log(s)}, {1, -2.0 - std::log(s)}, {4, -2.0 - std::log(s)}};
  ASSERT_EQ(log[tempered].logprobs.size(), 2u);
  for (const auto& lp : log[tempered].logprobs) {
    ASSERT_EQ(lp.top.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(lp.top[i].token, tempered_top[i].token);
      EXPECT_NEAR(lp.top[i].logprob, tempered_top[i].logprob, 1e-12);
      if (lp.token == tempered_top[i].token) {
        EXPECT_NEAR(lp.logprob, tempered_top[i].logprob, 1e-12);
      }
    }
  }

  const double sb = 2.0 + std::exp(-1.0) + std::exp(-4.0);
  ASSERT_EQ(log[blocked].logprobs.size(), 1u);
  const auto& lb = log[blocked].logprobs[0];
  EXPECT_NE(lb.token, 0);
  const double expected_b[] = {0.0, 0.0, -1.0, -4.0, 0.0};
  EXPECT_NEAR(lb.logprob, expected_b[lb.token] - std::log(sb), 1e-12);
  ASSERT_EQ(lb.top.size(), 2u);
  EXPECT_EQ(lb.top[0].token, 1);
  EXPECT_EQ(lb.top[1].token, 4);
  EXPECT_NEAR(lb.top[0].logprob, -std::log(sb), 1e-12);
  EXPECT_NEAR(lb.top[1].logprob, -std::log(sb), 1e-12);

  const double sc = 1.0 + std::exp(-0.5);
  ASSERT_EQ(log[chain].logprobs.size(), 2u);
  for (const auto& lp : log[chain].logprobs) {
    ASSERT_EQ(lp.top.size(), 2u);
    EXPECT_EQ(lp.top[0].token, 0);
    EXPECT_EQ(lp.top[1].token, 1);
    EXPECT_NEAR(lp.top[0].logprob, -std::log(sc), 1e-12);
    EXPECT_NEAR(lp.top[1].logprob, -0.5 - std::log(sc), 1e-12);
    EXPECT_NEAR(lp.logprob, lp.token == 0 ? -std::log(sc) : -0.5 - std::log(sc), 1e-12);
  }
}

TEST(RunnerStepRunner, ARowThatCannotBeSampledFailsOnlyItsJob) {
  FixedLogitsRunner model({2.0f, 1.0f, 0.5f, -1.0f, 1.0f});
  RunnerStepRunner steps(model);
  Generator gen(steps);
  JobParams ok;
  ok.input_ids = {0, 1};
  ok.max_new_tokens = 2;
  // The chain allows token 0 only, and min_new_tokens blocks stop token 0: nothing is left to draw.
  JobParams stuck = ok;
  sampling::SamplerSettings st;
  st.allowed_tokens = {0};
  stuck.sampler = st;
  stuck.min_new_tokens = 1;
  stuck.stop_tokens = {0};
  const uint64_t a = gen.enqueue(ok), b = gen.enqueue(stuck);
  EventLog log;
  run(gen, log);
  EXPECT_EQ(log[a].final.reason, FinishReason::kLength);
  EXPECT_EQ(log[a].tokens, (std::vector<int32_t>{0, 0}));
  EXPECT_EQ(log[b].final.reason, FinishReason::kError);
  EXPECT_EQ(log[b].final.error.rfind("sampler: ", 0), 0u) << log[b].final.error;
  EXPECT_TRUE(log[b].tokens.empty());
}

TEST(Logprobs, HostDistributionFollowsTheHostSampler) {
  const std::vector<float> logits = {0.5f, 3.0f, 1.0f, 3.0f, -2.0f};
  // top-p 0.9 at temperature 1: sorted 1, 3 (tie, lower id first), 2, 0, 4; cumulative mass reaches 0.9 at the
  // third token.
  const auto p = host_distribution({.temperature = 1.0f, .top_k = 0, .top_p = 0.9f, .seed = 0}, logits);
  const double e1 = 1.0, e2 = std::exp(-2.0);
  const double s = 2 * e1 + e2;
  EXPECT_NEAR(p[1], e1 / s, 1e-15);
  EXPECT_NEAR(p[3], e1 / s, 1e-15);
  EXPECT_NEAR(p[2], e2 / s, 1e-15);
  EXPECT_EQ(p[0], 0.0);
  EXPECT_EQ(p[4], 0.0);
  const auto top = top_logprobs(p, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].token, 1);
  EXPECT_EQ(top[1].token, 3);
  EXPECT_EQ(top_logprobs(p, 10).size(), 3u);
  EXPECT_TRUE(top_logprobs(p, 0).empty());
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

TEST(StopStrings, BadParametersAreRejectedByName) {
  PieceVocab v;
  v.id("a");
  FakeStepRunner fake({.vocab_size = 4});
  Generator gen(fake);
  JobParams p;
  p.input_ids = {1};
  p.max_new_tokens = 2;
  p.stop_strings = {"x"};
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("stop_strings need a text decoder"), std::string::npos);
  p.text = v.decoder();
  p.stop_strings = {"x", ""};
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("stop_strings[1] is empty"), std::string::npos);
  p.stop_strings = {};
  p.banned_strings = {""};
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("banned_strings[0] is empty"), std::string::npos);
  p.banned_strings = {"x"};
  p.text.reset = nullptr;
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("push without reset"), std::string::npos);
  p.banned_strings = {};
  p.top_logprobs = -1;
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("top_logprobs"), std::string::npos);
  p.top_logprobs = 0;
  p.min_new_tokens = 1;
  p.stop_tokens = {0, 1, 2, 3, 3, 7};
  EXPECT_NE(error_of([&] { gen.enqueue(p); }).find("whole vocabulary (4 tokens)"), std::string::npos);
  p.min_new_tokens = 0;
  EXPECT_NO_THROW(gen.enqueue(p));
}

}  // namespace
}  // namespace exl::generator
