// Collects generator events per job and checks the event contract: tokens arrive only before the one final event.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "generator/job.h"

namespace exl::generator::testing {

struct JobRecord {
  std::vector<int32_t> tokens;
  std::vector<SampledLogprobs> logprobs;
  std::string text;
  std::vector<JobEvent> events;  // every event, in order
  int finishes = 0;
  JobEvent final;  // the finished event
};

class EventLog {
 public:
  void add(const JobEvent& e) {
    JobRecord& r = jobs_[e.job_id];
    EXPECT_EQ(r.finishes, 0) << "job " << e.job_id << " got an event after its final one";
    if (!e.logprobs.empty()) {
      EXPECT_EQ(e.logprobs.size(), e.tokens.size()) << "job " << e.job_id;
    }
    for (size_t i = 0; i < e.logprobs.size() && i < e.tokens.size(); ++i)
      EXPECT_EQ(e.logprobs[i].token, e.tokens[i]) << "job " << e.job_id;
    r.tokens.insert(r.tokens.end(), e.tokens.begin(), e.tokens.end());
    r.logprobs.insert(r.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
    r.text += e.text;
    r.events.push_back(e);
    if (e.finished) {
      ++r.finishes;
      r.final = e;
      finish_order_.push_back(e.job_id);
    }
  }
  void add(const std::vector<JobEvent>& events) {
    for (const auto& e : events) add(e);
  }
  const JobRecord& operator[](uint64_t id) const {
    static const JobRecord kNone;
    const auto it = jobs_.find(id);
    return it == jobs_.end() ? kNone : it->second;
  }
  bool finished(uint64_t id) const { return (*this)[id].finishes > 0; }
  const std::map<uint64_t, JobRecord>& jobs() const { return jobs_; }
  const std::vector<uint64_t>& finish_order() const { return finish_order_; }

 private:
  std::map<uint64_t, JobRecord> jobs_;
  std::vector<uint64_t> finish_order_;
};

}  // namespace exl::generator::testing
