/* raw.c - placeholder until raw mode lands */
#include "pipe.h"
int dp_raw_start(lua_State *L, struct dp_pipe *p, int opts)
{
	(void)opts;
	p->closed = 1;
	return luaL_error(L, "raw mode is not available yet");
}
int dp_raw_fill(lua_State *L, struct dp_pipe *p, int refs, int ms)
{
	(void)L; (void)p; (void)refs; (void)ms;
	return 0;
}
void dp_raw_close(struct dp_pipe *p) { (void)p; }
int dp_raw_stats(lua_State *L, struct dp_pipe *p) { (void)p; lua_newtable(L); return 1; }
int dp_raw_fd(struct dp_pipe *p) { (void)p; return -1; }
void dp_raw_open(lua_State *L) { (void)L; }
