"""The exports app's writes, split by subject: specs (creating specs, allocating versions, the domain
errors), build (snapshot → writers → archive; an attempt's start and end), recovery (the heartbeat and the
sweep: silent builds restarted or failed, lost tasks sent again), rows (the SQL), card (the dataset card),
progress (a build's progress file). Reads that pages and the API share are in exports.selectors."""
