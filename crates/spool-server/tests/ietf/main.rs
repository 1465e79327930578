//! The raw-HTTP conformance suite of Spool's server for "Resumable Uploads
//! for HTTP" (draft-ietf-httpbis-resumable-upload): interop version 8 (draft
//! -11 and the editor's copy of 2026-07-01) and interop version 6 (draft
//! -05), against a real `spool_server::Server` on 127.0.0.1:0 with its own
//! data directory per test, spoken to byte for byte over TCP so that every
//! 104 and 100 is seen on the wire ([`support`]). The table below lists each
//! server requirement of the newest text (R-ids and § from
//! /work/notes/ietf-draft.md) and each one of -05 that differs (F-ids, -05
//! §), with the test that checks it or why none does; a test that applies to
//! both versions runs for each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// Newest text (interop 8; "both" = the test runs for interop 6 and 8):
//
// | id  | §       | level       | requirement                                   | checked by / status |
// |-----|---------|-------------|-----------------------------------------------|---------------------|
// | R1  | 4       | SHOULD      | upload URI unique, never reused               | cancellation::r1_upload_urls_are_unique_and_never_reused |
// | R2  | 4.1.1   | MUST NOT    | the offset never decreases                    | offset::r2_the_offset_never_decreases (across a cut-off and a restart) |
// | R3  | 4.1.1   | MUST        | lost state deactivates the upload             | cancellation::r3_an_upload_that_lost_bytes_is_deactivated |
// | R4  | 4.1.1   | MUST        | malformed Upload-Offset ignored               | append::r4_a_malformed_upload_offset_is_ignored (server fixed: was 400) |
// | R5  | 4.1.2   | MUST        | malformed Upload-Complete ignored             | append::r5_a_malformed_upload_complete_is_ignored (server fixed: was 400) |
// | R6  | 4.1.3   | MUST        | malformed Upload-Length ignored               | append::r6_a_malformed_upload_length_is_ignored (server fixed: was 400) |
// | R7  | 4.1.3   | MUST        | length indications must match                 | append::r7_disagreeing_lengths_are_refused; problems::inconsistent_lengths_are_their_problem_type |
// | R8  | 4.1.4   | MUST        | Upload-Limit: a Dictionary, Integer members   | limits::r8_upload_limit_is_a_dictionary_of_integers (a receiver's rule: the server receives none, so what it sends is checked) |
// | R9  | 4.1.4   | SHOULD NOT  | limits never change to fail a client          | limits::r9_a_client_following_the_first_limits_never_fails |
// | R10 | 4.1.4   | SHOULD NOT  | max-size / max-append-size never decrease     | limits::r10_max_size_never_decreases (no max-append-size is sent) |
// | R11 | 4.1.4   | SHOULD NOT  | min-size / min-append-size never increase     | limits::r11_min_sizes_never_increase (neither is applied) |
// | R12 | 4.1.4   | SHOULD NOT  | the end implied by max-age never decreases    | limits::r12_the_end_of_the_lifetime_never_moves_earlier |
// | R13 | 4.1.4   | MUST        | OPTIONS to the creation resource: Upload-Limit| limits::r13_options_names_upload_limit |
// | R14 | 4.1.4   | SHOULD      | identical limits: Upload-Limit on `OPTIONS *` | n/a: uploads from /v1/on-demand may carry their own max_size, so not all resources share limits; `OPTIONS *` is not served |
// | R15 | 4.1.4   | MUST        | no limits: `min-size=0`, never empty          | limits::r15_upload_limit_is_never_empty (Spool always applies max-size, so `min-size=0` never has to be sent) |
// | R16 | 4.1.4   | SHOULD NOT  | OPTIONS looser than a created upload's limits | limits::r16_options_is_not_looser_than_a_created_upload |
// | R17 | 4.1.4   | SHOULD      | a 413 from the limits carries Upload-Limit    | limits::r17_a_413_names_the_limits (server fixed: an upload's own limit, was the server's) |
// | R18 | 4.2.2   | SHOULD      | creation announced with a 104                 | creation::r18_a_creation_is_announced_with_104 (server fixed: a creation without content had none) |
// | R19 | 4.2.2   | MUST        | the 104: Location and Upload-Limit            | creation::r19_the_104_carries_location_and_upload_limit |
// | R20 | 4.2.2   | MUST        | `?0` answer: Location and Upload-Limit        | creation::r20_an_incomplete_creation_names_location_and_upload_limit |
// | R21 | 4.2.2   | RECOMMENDED | `?0` answer is 201                            | creation::r21_an_incomplete_creation_is_201 |
// | R22 | 4.2.2   | MUST        | creation records the length                   | creation::r22_creation_records_the_length |
// | R23 | 4.2.2   | MUST        | identical Location in interim and final       | creation::r23_interim_and_final_locations_are_identical |
// | R24 | 4.2.2   | SHOULD      | creation answer carries Upload-Complete       | creation::r24_a_creation_answer_carries_upload_complete |
// | R25 | 4.2.2   | SHOULD      | cut-off creation: keep as much as possible    | creation::r25_a_cut_off_creation_resumes_from_its_104_without_loss |
// | R26 | 4.2.2   | MUST NOT    | cut-off creation is not complete              | creation::r26_a_cut_off_creation_is_not_complete |
// | R27 | 4.3.2   | MUST        | HEAD/GET: Upload-Offset                       | offset::r27_head_and_get_report_the_offset |
// | R28 | 4.3.2   | MUST        | HEAD/GET: Upload-Complete                     | offset::r28_offset_retrieval_reports_completeness |
// | R29 | 4.3.2   | MUST        | HEAD/GET: Upload-Length once supplied         | offset::r29_offset_retrieval_reports_the_length_once_known |
// | R30 | 4.3.2   | MUST        | HEAD/GET: Upload-Limit                        | offset::r30_offset_retrieval_names_the_limits |
// | R31 | 4.3.2   | SHOULD      | HEAD/GET: Cache-Control: no-store             | offset::r31_offset_retrieval_is_not_stored_by_caches |
// | R32 | 4.3.2   | SHOULD NOT  | HEAD/GET: no 301/302                          | offset::r32_offset_retrieval_is_never_redirected |
// | R33 | 4.4.2   | SHOULD      | cut-off append: keep its prefix, no gaps      | append::r33_a_cut_off_append_keeps_its_prefix |
// | R34 | 4.4.2   | MUST NOT    | cut-off append is not complete                | append::r34_a_cut_off_append_is_not_complete |
// | R35 | 4.4.2   | MUST        | offset mismatch: 409 + Upload-Complete: ?0    | append::r35_a_mismatching_offset_is_409_with_upload_complete_false |
// | R36 | 4.4.2   | MUST        | the 409 carries the correct Upload-Offset     | append::r36_the_409_names_the_correct_offset |
// | R37 | 4.4.2   | SHOULD      | final answer = the creation target's answer   | append::r37_the_final_answer_is_the_creation_targets_answer (same body; the status is 200 where a whole creation answers 201, as the README documents) |
// | R38 | 4.4.2   | MUST        | final answer: Upload-Complete: ?1             | append::r38_the_final_answer_carries_upload_complete_true |
// | R39 | 4.4.2   | MUST        | append records the length                     | append::r39_an_append_records_the_length |
// | R40 | 4.4.2   | MUST        | offset never passes the length; invalidate    | append::r40_the_offset_never_exceeds_the_length — partly NOT MET: the request is refused before a byte is stored, but the upload is not marked invalid (it stays usable) |
// | R41 | 4.4.2   | SHOULD      | progress 104s with Upload-Offset on append    | not implemented (README "Not done": progress 104s during an append) |
// | R42 | 4.4.2   | MUST NOT    | append 104s carry no Location                 | append::r42_no_104_with_location_on_an_append (no 104 at all on an append) |
// | R43 | 4.4.2   | SHOULD      | append answer carries Upload-Complete         | append::r43_an_append_answer_carries_upload_complete |
// | R44 | 4.5.2   | SHOULD      | DELETE deactivates the upload                 | cancellation::r44_delete_deactivates_the_upload |
// | R45 | 4.5.2   | SHOULD      | DELETE first ends in-flight requests          | cancellation::r45_delete_ends_the_in_flight_append_first |
// | R46 | 4.5.2   | SHOULD NOT  | DELETE: no 301/302                            | cancellation::r46_delete_is_never_redirected |
// | R47 | 4.6     | MUST        | no races, loss or corruption from concurrency | concurrency::r47_racing_appends_never_interleave |
// | R48 | 4.6     | MUST NOT    | no outdated offset on retrieval               | offset::r48_offset_retrieval_is_never_outdated (beside a live writer HEAD names the saved offset: bytes that writer has not saved yet count once it ends) |
// | R49 | 4.6     | MUST        | the retrieved offset is accepted next         | concurrency::r49_the_retrieved_offset_is_accepted (server fixed: HEAD now takes over a stalled writer first; beside a live writer — a client breaking C6/C8 — the append gets 409 ERR_UPLOAD_LOCKED until it ends) |
// | R50 | 4.6     | SHOULD      | a new request ends the running one            | deliberate deviation (README "A second writer"): only a writer stalled for `stall_grace` is ended (by PATCH, HEAD, GET; DELETE always ends it); concurrency::a_second_appender_beside_a_live_writer_gets_409_locked, concurrency::a_stalled_writer_is_taken_over |
// | R51 | 5       | MUST NOT    | no 100 omitted because of a 104               | creation::r51_expect_continue_gets_the_100_and_the_104 |
// | R52 | 7.1     | SHOULD      | mismatch problem: expected- and provided-offset | problems::r52_a_mismatch_names_both_offsets |
// | R53 | 10.1    | SHOULD      | Repr-Digest mismatch fails the upload         | not implemented (README "Not done": Repr-Digest) |
// | R54 | 10.1    | SHOULD      | Want-Repr-Digest answered                     | not implemented (README "Not done": Want-Repr-Digest) |
// | R55 | 10.1    | SHOULD      | Repr-Digest at completion                     | not implemented (README "Not done": Repr-Digest) |
// | R56 | 10.2    | SHOULD      | Content-Digest mismatch: nothing appended     | append::r56_a_content_digest_mismatch_appends_nothing |
// | R57 | 13      | SHOULD      | only authorised clients                       | security::r57_only_authorised_clients_reach_an_upload |
// | R58 | 13      | RECOMMENDED | hard-to-guess upload URIs                     | security::r58_upload_urls_are_hard_to_guess |
// | R59 | 13      | MUST        | no internal information in the URI            | security::r59_the_upload_url_leaks_nothing_internal |
// | R60 | 13      | MUST        | metadata validated / sanitised                | security::r60_metadata_is_sanitised |
// | R61 | 13      | SHOULD      | content scanning not circumvented             | not testable: Spool runs no content scanner |
// | R62 | 13      | SHOULD      | re-check authorisation before finalising      | security::r62_finishing_rechecks_that_the_upload_may_finish |
// | R63 | 13      | SHOULD      | Slowloris mitigations                         | security::r63_a_slow_request_head_is_cut_off (header timeout; the body idle timeout and the connection limit: tests/protocol/durability.rs, tests/e2e/connections.rs) |
// | R64 | App. B  | MUST NOT    | no 104 without a matching interop version     | creation::r64_no_104_without_the_interop_header, creation::r64_no_104_for_a_mismatching_interop_version |
// | R65 | App. B  | MUST        | the 104 carries the interop version           | creation::r65_the_104_names_the_interop_version |
//
// Beyond the numbered list: no 1xx to HTTP/1.0 (RFC 9110 §15.2):
// creation::no_104_to_an_http10_client; an append is
// `application/partial-upload` (§4.4): append::an_append_must_be_a_partial_upload;
// a whole `?1` creation gets the final answer (§4.2.2):
// creation::a_whole_complete_creation_gets_the_final_answer; problem details
// (§7, RFC 9457) and an unsupported interop version (412
// ERR_UNSUPPORTED_VERSION): problems::*; on-demand signed URLs and
// TUS/draft crossover: crossover::*.
//
// Tally: of R1–R65, 59 are checked by a test (R40 only partly met, R50 a
// deliberate deviation checked as Spool's rule), 4 are not implemented (R41,
// R53–R55) and 2 are not applicable or not testable (R14, R61); of F1–F25,
// 23 are checked (F5's RECOMMENDED 201 not followed) and 2 do not apply.
//
// Draft -05 (interop 6), where it differs from the newest text:
//
// | id  | -05 §   | level  | requirement                                      | checked by / status |
// |-----|---------|--------|--------------------------------------------------|---------------------|
// | F1  | 4, 6    | MUST   | Upload-Offset on every creation/append answer    | interop6::every_answer_carries_upload_offset_for_interop_6 |
// | F2  | 4       | MUST   | `?0` creation: 201 + Upload-Complete: ?0         | creation::r21_an_incomplete_creation_is_201 (both) |
// | F3  | 4       | MUST   | `?1` creation: 2xx (201 RECOMMENDED), Location, never `?0` | interop6::final_answers_never_say_incomplete_for_interop_6, creation::a_whole_complete_creation_gets_the_final_answer |
// | F4  | 6       | MUST   | `?0` append: 201 + Upload-Offset                 | interop6::an_incomplete_append_is_201_for_interop_6 |
// | F5  | 6       | MUST   | `?1` append: 2xx (201 RECOMMENDED), never `?0`   | interop6::final_answers_never_say_incomplete_for_interop_6 (the RECOMMENDED 201 is not followed: Spool answers 200) |
// | F6  | 6       | MUST   | PATCH body is application/partial-upload         | append::an_append_must_be_a_partial_upload (both) |
// | F7  | 6       | —      | PATCH without Upload-Complete ends the upload    | interop6::a_patch_without_upload_complete_completes_for_interop_6 (as Apple's server reads it) |
// | F8  | 6, 10   | MUST   | bytes for a completed upload: unchanged, 400     | interop6::bytes_for_a_completed_upload_are_the_completed_upload_problem (server fixed: through the signed URL it was 403) |
// | F9  | 4, 6    | MUST   | inconsistent lengths: 400                        | append::r7_disagreeing_lengths_are_refused (both) |
// | F10 | 6       | MUST   | past the length: stop appending, 400             | interop6::content_past_the_length_is_400_for_interop_6 (server fixed: was 413) |
// | F11 | 5       | MUST   | HEAD with Upload-Offset/-Complete/-Length: 400   | interop6::head_and_delete_with_upload_fields_are_400_for_interop_6 |
// | F12 | 7       | MUST   | DELETE with Upload-Offset/-Complete: 400         | interop6::head_and_delete_with_upload_fields_are_400_for_interop_6 |
// | F13 | 5       | MUST   | HEAD: 200/204, Upload-Offset, -Complete, -Length; no-store SHOULD | offset::r27..r31 (both) |
// | F14 | 5, 6, 7 | MUST   | an inactive upload: 404                          | interop6::an_inactive_upload_is_404_for_interop_6 (server fixed: was 410) |
// | F15 | 7       | MUST   | DELETE: 204                                      | cancellation::cancellation_answers_204 (both) |
// | F16 | 7       | MUST   | DELETE unsupported: 405                          | n/a: cancellation is supported |
// | F17 | 8       | MUST / SHOULD NOT | `expires`; limits unchanged; expires not reduced | interop6::upload_limit_says_expires_for_interop_6; limits::r10..r12 (both) |
// | F18 | 8       | MUST NOT | no min-append-size refusal of a `?1` append    | n/a: Spool applies no min-append-size (limits::r11) |
// | F19 | 8       | MUST   | OPTIONS: Upload-Limit (also on `*` if all share) | limits::r13_options_names_upload_limit (both); `*`: n/a as R14 |
// | F20 | 4       | MUST / MUST NOT | first 104 has Location, later ones none | creation::r19 (Spool sends one 104 per creation: creation::r18) |
// | F21 | 4.2     | MUST NOT / MUST | 104 only for a matching version, echoing it | creation::r64_*, creation::r65 (both) |
// | F22 | 12      | MUST NOT | HEAD / DELETE: no 301/302                      | offset::r32, cancellation::r46 (both) |
// | F23 | 11      | MUST NOT / MUST | offset never smaller; lost data invalidates | offset::r2, cancellation::r3 (both) |
// | F24 | 5       | MUST   | the HEAD offset is accepted by the next append   | concurrency::r49_the_retrieved_offset_is_accepted (both) |
// | F25 | 4       | MUST   | creation records Upload-Length                   | creation::r22_creation_records_the_length (both) |

mod append;
mod cancellation;
mod concurrency;
mod creation;
mod crossover;
mod interop6;
mod limits;
mod offset;
mod problems;
mod security;
mod support;
