// Entry sync: an agent pulls the entries it may issue and keeps them current by revision. A
// sync with nothing new is parked (a long poll) until the store's revision or the bundle
// changes, or its wait ends.
//
// Every answer carries the server's own bundle and, whole, the federated bundles that the
// agent's entries name, so a federated bundle set, rotated or deleted reaches the agent at its
// next sync tick, as the own bundle does.
//
// The loop keeps the parked syncs and their timer; reading the store (the agent, its
// authorised set, the current revision) runs on the agent workers. A parked sync is looked at
// again when the store announces an entry change, when serverd's bundles change, when its wait
// ends, and at the resync interval.
#include <algorithm>
#include <set>

#include "core/log.h"
#include "core/wire/convert.h"
#include "serverd/api/agent_api.h"
#include "serverd/api/agent_api_state.h"

namespace sigil::serverd {

namespace {

// The federated bundles the entries of `set` name, each once, in trust domain order. A trust
// domain without a bundle here is left out: the entry still works, its workloads just get no
// bundle for that domain until one is set.
Result<flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::TrustBundle>>>> BuildFederatedBundles(
    flatbuffers::FlatBufferBuilder& builder, const EntryService::Authorization& set,
    const FederatedBundles::Snapshot& federated) {
  std::set<std::string, std::less<>> named;
  for (const auto& [id, entry] : set.by_id) named.insert(entry.federates_with.begin(), entry.federates_with.end());
  std::vector<flatbuffers::Offset<wire::TrustBundle>> bundles;
  for (const std::string& name : named) {
    auto td = TrustDomain::Parse(name);
    if (!td.ok()) continue;
    auto it = federated.by_trust_domain.find(td->name());
    if (it == federated.by_trust_domain.end()) continue;
    SIGIL_ASSIGN_OR_RETURN(auto bundle, wire::BuildTrustBundle(builder, *it->second));
    bundles.push_back(bundle);
  }
  return builder.CreateVector(bundles);
}

}  // namespace

void AgentApi::SyncEntries(const StreamPtr& stream, const wire::EntrySyncRequest& request,
                           const AttestedAgent& agent) {
  auto sync = std::make_shared<ParkedSync>();
  sync->stream = stream;
  sync->agent = agent;
  sync->since_revision = static_cast<int64_t>(request.since_revision());
  const auto wait = std::min(std::chrono::milliseconds(request.wait_ms()), options_.max_sync_wait);
  // The agent's wait began when it asked, not when a worker got to its request.
  sync->deadline = stream->request_started() + wait;
  sync->seen_wakeups = wakeups_.load();
  if (auto answer = AnswerSync(*sync, wait.count() == 0)) return Answer(stream, std::move(*answer));
  io_.loop().Post([this, sync = std::move(sync)]() mutable { Park(std::move(sync)); });
}

std::optional<std::string> AgentApi::AnswerSync(ParkedSync& sync, bool force) {
  auto set = Authorized(sync.agent);
  if (!set.ok()) return ErrorAnswer(set.status());
  auto current = ca_.current();
  auto federated = federated_.Current();
  std::shared_ptr<const SentState> sent;
  {
    std::lock_guard lock(sent_mutex_);
    sent = sent_[sync.agent.spiffe_id];
  }
  const bool full = sync.since_revision == 0 || !sent || sent->revision != sync.since_revision;
  std::vector<const RegistrationEntry*> changed;
  std::vector<std::string> removed;
  if (full) {
    for (const auto& [id, entry] : (*set)->by_id) changed.push_back(&entry);
  } else {
    for (const auto& [id, entry] : (*set)->by_id) {
      auto it = sent->entry_revisions.find(id);
      if (it == sent->entry_revisions.end() || it->second != entry.revision) changed.push_back(&entry);
    }
    for (const auto& [id, revision] : sent->entry_revisions) {
      if (!(*set)->by_id.contains(id)) removed.push_back(id);
    }
  }
  const bool bundle_changed = !sent || sent->bundle_sequence != current->bundle.sequence ||
                              sent->federated_version != federated->version;
  if (!full && changed.empty() && removed.empty() && !bundle_changed && !force) {
    sync.seen_revision = (*set)->revision;
    sync.seen_bundle_sequence = current->bundle.sequence;
    sync.seen_federated_version = federated->version;
    return std::nullopt;
  }

  std::sort(changed.begin(), changed.end(),
            [](const RegistrationEntry* a, const RegistrationEntry* b) { return a->id < b->id; });
  flatbuffers::FlatBufferBuilder builder(1024 + changed.size() * 512);
  std::vector<flatbuffers::Offset<wire::Entry>> entries;
  entries.reserve(changed.size());
  for (const RegistrationEntry* entry : changed) entries.push_back(wire::BuildEntry(builder, *entry));
  auto entry_vector = builder.CreateVector(entries);
  auto removed_vector = builder.CreateVectorOfStrings(removed);
  auto bundle = wire::BuildTrustBundle(builder, current->bundle);
  if (!bundle.ok()) return ErrorAnswer(bundle.status());
  auto federated_bundles = BuildFederatedBundles(builder, **set, *federated);
  if (!federated_bundles.ok()) return ErrorAnswer(federated_bundles.status());
  auto response = wire::CreateEntrySyncResponse(builder, static_cast<uint64_t>((*set)->revision), full,
                                                 entry_vector, removed_vector, *bundle, *federated_bundles);
  std::string answer = FinishAnswer(builder, response);

  auto next = std::make_shared<SentState>();
  next->revision = (*set)->revision;
  next->bundle_sequence = current->bundle.sequence;
  next->federated_version = federated->version;
  next->entry_revisions.reserve((*set)->by_id.size());
  for (const auto& [id, entry] : (*set)->by_id) next->entry_revisions.emplace(id, entry.revision);
  std::lock_guard lock(sent_mutex_);
  sent_[sync.agent.spiffe_id] = std::move(next);
  return answer;
}

void AgentApi::Park(std::shared_ptr<ParkedSync> sync) {
  if (sync->stream->closed()) return;
  if (sync_timer_ == nullptr) {  // stopping
    Respond(*sync->stream, ErrorAnswer(UnavailableError("serverd is stopping")));
    return;
  }
  const bool missed_a_wakeup = sync->seen_wakeups != wakeups_.load();
  const auto deadline = sync->deadline;
  sync->is_parked = true;
  auto* parked = sync.get();
  parked->place = parked_.emplace(deadline, std::move(sync));
  if (missed_a_wakeup) {
    news_pending_ = true;
    LookForNews();
  } else {
    ArmSyncTimer();
  }
}

void AgentApi::WakeParkedSyncs() {
  ++wakeups_;
  io_.loop().Post([this] {
    news_pending_ = true;
    LookForNews();
  });
}

void AgentApi::ArmSyncTimer(std::chrono::milliseconds at_least) {
  if (sync_timer_ == nullptr) return;
  if (parked_.empty()) {
    uv_timer_stop(sync_timer_);
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const auto next = std::min(next_resync_, parked_.begin()->first);
  const auto wait = std::max(std::chrono::ceil<std::chrono::milliseconds>(next - now), at_least);
  uv_timer_start(sync_timer_, &AgentApi::OnSyncTimer, static_cast<uint64_t>(std::max<int64_t>(wait.count(), 0)), 0);
}

void AgentApi::OnSyncTimer(uv_timer_t* timer) { static_cast<AgentApi*>(timer->data)->LookForNews(); }

void AgentApi::LookForNews() {
  if (sync_timer_ == nullptr) return;
  if (sync_check_running_) {
    sync_check_again_ = true;
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const bool look_for_news = news_pending_ || now >= next_resync_;
  std::vector<std::shared_ptr<ParkedSync>> handed;
  if (look_for_news) {
    // Every parked sync: drop those whose agent hung up, hand the rest.
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (it->second->stream->closed()) {
        it->second->is_parked = false;
        it = parked_.erase(it);
      } else {
        handed.push_back((it++)->second);
      }
    }
  } else {
    const auto due = now + kSyncDeadlineSlack;
    for (auto it = parked_.begin(); it != parked_.end() && it->first <= due; ++it) handed.push_back(it->second);
  }
  if (handed.empty()) {
    ArmSyncTimer();
    return;
  }
  sync_check_running_ = true;
  Status queued = sync_worker_->Submit({.run = [this, handed = std::move(handed), look_for_news]() mutable {
    CheckParkedSyncs(std::move(handed), look_for_news);
  }});
  if (!queued.ok()) {
    // The sync worker is stopping: the timer tries again, after a pause even for a wait already over.
    sync_check_running_ = false;
    ArmSyncTimer(kSyncRetryWhenBusy);
    return;
  }
  if (look_for_news) {
    news_pending_ = false;
    next_resync_ = now + options_.sync_resync_interval;
  }
}

void AgentApi::CheckParkedSyncs(std::vector<std::shared_ptr<ParkedSync>> parked, bool look_for_news) {
  const auto now = std::chrono::steady_clock::now();
  Result<int64_t> revision(int64_t{0});
  uint64_t bundle_sequence = 0;
  uint64_t federated_version = 0;
  if (look_for_news) {
    revision = store_.CurrentRevision();
    bundle_sequence = ca_.current()->bundle.sequence;
    federated_version = federated_.Current()->version;
  }
  std::vector<std::pair<std::shared_ptr<ParkedSync>, std::string>> answers;
  for (auto& sync : parked) {
    const bool expired = now + kSyncDeadlineSlack >= sync->deadline;
    const bool news = look_for_news && (!revision.ok() || *revision != sync->seen_revision ||
                                        bundle_sequence != sync->seen_bundle_sequence ||
                                        federated_version != sync->seen_federated_version);
    if (!news && !expired) continue;
    if (auto answer = AnswerSync(*sync, expired)) answers.emplace_back(std::move(sync), std::move(*answer));
  }
  io_.loop().Post([this, answers = std::move(answers)]() mutable {
    sync_check_running_ = false;
    for (auto& [sync, answer] : answers) {
      if (!sync->is_parked) continue;  // its agent hung up, or serverd is stopping
      sync->is_parked = false;
      parked_.erase(sync->place);
      Respond(*sync->stream, std::move(answer));
    }
    if (std::exchange(sync_check_again_, false) || news_pending_) {
      LookForNews();
    } else {
      ArmSyncTimer();
    }
  });
}

}  // namespace sigil::serverd
