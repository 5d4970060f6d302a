// A vocabulary of fixed text pieces for the text tests (stop strings, banned strings), and a TextDecoder over it.
// A "glue" piece gives no text when pushed: its text comes out in front of the next piece's, the way the bytes of
// an incomplete UTF-8 sequence wait for the token that completes them. So the decoder has state, and a rewind must
// reset it.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "generator/job.h"

namespace exl::generator::testing {

class PieceVocab {
 public:
  int32_t add(std::string piece, bool glue = false) {
    pieces_.push_back(std::move(piece));
    glue_.push_back(glue);
    return static_cast<int32_t>(pieces_.size() - 1);
  }
  // The id of a piece; adds it (not glue) when new.
  int32_t id(std::string_view piece) {
    for (size_t i = 0; i < pieces_.size(); ++i)
      if (pieces_[i] == piece) return static_cast<int32_t>(i);
    return add(std::string(piece));
  }
  std::vector<int32_t> ids(const std::vector<std::string>& pieces) {
    std::vector<int32_t> out;
    for (const auto& p : pieces) out.push_back(id(p));
    return out;
  }
  int64_t size() const { return static_cast<int64_t>(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_.at(static_cast<size_t>(id)); }
  // The text of a token sequence: its pieces, concatenated.
  std::string text(std::span<const int32_t> tokens) const {
    std::string out;
    for (int32_t t : tokens) out += piece(t);
    return out;
  }
  // push / flush / reset over a snapshot of the pieces; resets are counted in *resets when given.
  TextDecoder decoder(std::shared_ptr<int> resets = nullptr) const {
    struct State {
      std::vector<std::string> pieces;
      std::vector<bool> glue;
      std::string carry;
    };
    auto st = std::make_shared<State>(State{pieces_, glue_, {}});
    TextDecoder d;
    d.push = [st](int32_t t) {
      EXPECT_TRUE(t >= 0 && static_cast<size_t>(t) < st->pieces.size()) << "token " << t;
      st->carry += st->pieces.at(static_cast<size_t>(t));
      if (st->glue[static_cast<size_t>(t)]) return std::string();
      return std::exchange(st->carry, {});
    };
    d.flush = [st] { return std::exchange(st->carry, {}); };
    d.reset = [st, resets] {
      st->carry.clear();
      if (resets) ++*resets;
    };
    return d;
  }

 private:
  std::vector<std::string> pieces_;
  std::vector<bool> glue_;
};

}  // namespace exl::generator::testing
