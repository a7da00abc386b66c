// What the app knows of this session, shared by the views: the person signed in, the player's
// stream and recording, and a counter bumped on every navigation (so a slow earlier view does not
// cover a newer one). `hooks` lets the views reach the router and hear of view changes without
// importing the app that imports them.
export const state = {
  me: null,
  hls: null,
  current: null, // the recording on the player page
  routeSeq: 0,
};

export const hooks = {
  route: async () => {},
  onShow: [],
};
