package feed

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"reelfeed/catalog"
	"reelfeed/filter"
	"reelfeed/rank"
	"reelfeed/recall"
)

// fill completes a short page. Unseen videos always come before already
// shown ones, and capped picks before cap-relaxed ones:
//
//  1. the hot source (Deps.Backfill), asked for Config.Backfill.Quota;
//  2. candidates cut at truncation;
//  3. the catalog by quality in the user's region, up to FillScanLimit;
//  4. the same pools with the caps relaxed, the ranked-but-capped
//     candidates first;
//  5. readmitted already-shown videos, least recently shown first: those
//     recall proposed, then those the catalog scan found, so a user who
//     has been shown every video of their region still gets a full page.
//
// Everything new to this request passes the filter chain strictly first.
func (s *Service) fill(ctx context.Context, sc *scratch, rreq *recall.Request, freq *filter.Request,
	ranked, truncated, readmitted []filter.Candidate, dbg *Debug, debug bool, clk *stageClock) {
	pg := &sc.pg
	strict := *freq
	strict.Need = 0 // nothing already shown from here on, until step 5

	// 1. Hot backfill.
	sc.fill = sc.fill[:0]
	if s.backfill != nil {
		sc.fill = s.recallBackfill(ctx, rreq, sc, sc.fill, dbg, debug)
	}
	hot := sc.fill[:s.runFilters(ctx, &strict, sc.fill, "fill", dbg, debug, clk)]
	offerAll(pg, hot, backfillBranch, viaBackfillHot, true)

	// 2. What truncation cut.
	offerAll(pg, truncated, "", viaRemaining, true)

	// 3. The catalog, best quality first; what it finds already shown
	// waits for step 5.
	scanned := sc.fill[len(hot):len(hot)]
	var shownScanned []filter.Candidate
	if !pg.full() {
		soft := *freq
		soft.Need = pg.count - len(pg.picks)
		scanned = s.scanCatalog(ctx, sc, &soft, scanned, dbg, debug, clk)
		unseen := partitionUnseen(scanned)
		scanned, shownScanned = scanned[:unseen], scanned[unseen:]
	}

	// 4. Caps relaxed, so a page is full whenever unseen videos exist.
	if !pg.full() {
		for _, i := range sc.order {
			if !sc.used[i] && pg.offer(pick{cand: ranked[i], item: sc.items[i], branch: ranked[i].Branch, via: viaRemaining, scored: true}, false) {
				sc.used[i] = true
			}
		}
		offerAll(pg, hot, backfillBranch, viaBackfillHot, false)
		offerAll(pg, truncated, "", viaRemaining, false)
		offerAll(pg, scanned, backfillBranch, viaBackfillCat, false)
	}

	// 5. Already shown, least recently shown first (the filter's order).
	for _, shown := range [][]filter.Candidate{readmitted, shownScanned} {
		offerAll(pg, shown, "", viaReadmitted, true)
		offerAll(pg, shown, "", viaReadmitted, false)
	}
}

// offerAll offers unranked candidates in order; branch "" keeps each
// candidate's own branch.
func offerAll(pg *page, cands []filter.Candidate, branch, via string, capped bool) {
	for i := range cands {
		if pg.full() {
			return
		}
		c := &cands[i]
		b := branch
		if b == "" {
			b = c.Branch
		}
		pg.offer(pick{cand: *c, item: rank.Item{Video: c.Video, Branch: b}, branch: b, via: via}, capped)
	}
}

// recallBackfill asks the hot source for more candidates and appends those
// this request has not considered yet.
func (s *Service) recallBackfill(ctx context.Context, rreq *recall.Request, sc *scratch,
	dst []filter.Candidate, dbg *Debug, debug bool) []filter.Candidate {
	bctx, cancel := context.WithTimeout(ctx, s.cfg.Backfill.Budget)
	defer cancel()
	start := time.Now()
	cands, err := s.backfill.Recall(bctx, rreq, s.cfg.Backfill.Quota)
	took := time.Since(start)
	s.metrics.branchSeconds[backfillBranch].Observe(took.Seconds())
	bd := BranchDebug{Branch: backfillBranch, Quota: s.cfg.Backfill.Quota, Ms: ms(took)}
	if err == nil && took > s.cfg.Backfill.Budget {
		err = context.DeadlineExceeded
	}
	if err != nil {
		reason := failError
		if errors.Is(err, context.DeadlineExceeded) {
			reason = failTimeout
		}
		s.metrics.branchFailed(backfillBranch, reason)
		s.warnf(backfillBranch, "hot backfill dropped (fail open)", zap.Error(err))
		bd.Error = reason + ": " + err.Error()
		cands = nil
	}
	for _, c := range cands {
		if c.Video == nil {
			continue
		}
		if _, seen := sc.index[c.Video.Key()]; seen {
			continue
		}
		sc.index[c.Video.Key()] = -1
		dst = append(dst, filter.Candidate{Video: c.Video, Branch: backfillBranch})
		bd.Candidates++
	}
	s.metrics.branchCandidates[backfillBranch].Add(float64(bd.Candidates))
	if debug {
		dbg.Branches = append(dbg.Branches, bd)
	}
	return dst
}

// scanCatalog walks the region's catalog by quality, in widening windows,
// offering unseen videos new to this request until the page is full or
// FillScanLimit videos were read. It returns the filtered videos scanned,
// appended to dst: the unseen ones, and those freq's soft shown rule
// readmitted (flagged), which it does not offer.
func (s *Service) scanCatalog(ctx context.Context, sc *scratch, freq *filter.Request,
	dst []filter.Candidate, dbg *Debug, debug bool, clk *stageClock) []filter.Candidate {
	pg := &sc.pg
	limit := min(s.cfg.FillScanLimit, max(256, 16*pg.count))
	for from := 0; limit > 0 && !pg.full() && ctx.Err() == nil; {
		res := s.catalog.SearchVideos(catalog.Query{Region: freq.Region, Sort: catalog.SortByQuality, Limit: limit})
		start := len(dst)
		for _, v := range res[min(from, len(res)):] {
			if _, seen := sc.index[v.Key()]; seen {
				continue
			}
			sc.index[v.Key()] = -1
			dst = append(dst, filter.Candidate{Video: v, Branch: backfillBranch})
		}
		dst = dst[:start+s.runFilters(ctx, freq, dst[start:], "fill", dbg, debug, clk)]
		for i := start; i < len(dst); i++ { // readmitted ones wait for step 5
			if !dst[i].Readmitted {
				offerAll(pg, dst[i:i+1], backfillBranch, viaBackfillCat, true)
			}
		}
		if len(res) < limit || limit >= s.cfg.FillScanLimit {
			break
		}
		from, limit = len(res), min(4*limit, s.cfg.FillScanLimit)
	}
	return dst
}

// scoreFillPicks ranks the picks the fill stage added, in one feature read
// and one scorer call, so every served score comes from the same ranker.
// Like the main pass it fails open; it returns each dependency's error.
func (s *Service) scoreFillPicks(ctx context.Context, sc *scratch, q *rank.Query, boosts *rank.Boosts,
	now time.Time) (featuresErr, scorerErr error) {
	sc.extra = sc.extra[:0]
	for i := range sc.pg.picks {
		if p := &sc.pg.picks[i]; !p.scored {
			sc.extra = append(sc.extra, p.item)
		}
	}
	if len(sc.extra) == 0 {
		return nil, nil
	}
	featuresErr = s.loadFeatures(ctx, sc, sc.extra, now)
	scorerErr = s.rank(ctx, q, sc.extra, boosts)
	j := 0
	for i := range sc.pg.picks {
		if p := &sc.pg.picks[i]; !p.scored {
			p.item = sc.extra[j]
			p.scored = true
			j++
		}
	}
	return featuresErr, scorerErr
}
