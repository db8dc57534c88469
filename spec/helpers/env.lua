-- Loaded by busted before the specs (see .busted): the in-tree module first
-- (DROPPROBE_CPATH points at another build, e.g. the sanitizer one).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = (os.getenv("DROPPROBE_CPATH") or "./build/?.so") .. ";" .. package.cpath
